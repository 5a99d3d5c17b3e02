//! Unit tests of `auth` with real tokens made by `jsonwebtoken::encode`; the RSA and ECDSA
//! keys under `testdata/` were generated with openssl for these tests only.

use super::*;
use serde_json::json;

const SECRET: &str = "test-secret";
const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("testdata/ec_private.pem");
const EC_PUBLIC: &str = include_str!("testdata/ec_public.pem");

fn now() -> u64 {
    expires_in(Duration::ZERO)
}

fn all_keys() -> TokenConfig {
    TokenConfig {
        hmac_secret: Some(SECRET.into()),
        rsa_public_key: Some(RSA_PUBLIC.into()),
        ecdsa_public_key: Some(EC_PUBLIC.into()),
        ..TokenConfig::default()
    }
}

fn verifier(cfg: TokenConfig) -> TokenVerifier {
    TokenVerifier::new(&cfg).unwrap()
}

fn hs(alg: Algorithm, secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn rs(alg: Algorithm, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
}

fn es(claims: serde_json::Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
}

#[test]
fn valid_hs256_connect_token() {
    let exp = now() + 3600;
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice", "exp": exp}));
    let claims = verifier(all_keys()).verify_connect_now(&token).unwrap();
    assert_eq!(claims, ConnectClaims { user: "alice".into(), expires_at: Some(exp), info: None, channels: vec![] });
}

#[test]
fn hs384_and_hs512_use_the_same_secret() {
    let v = verifier(all_keys());
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = hs(alg, SECRET, json!({"sub": "bob"}));
        assert_eq!(v.verify_connect_now(&token).unwrap().user, "bob");
    }
}

#[test]
fn wrong_secret_is_invalid() {
    let token = hs(Algorithm::HS256, "other", json!({"sub": "alice"}));
    let err = verifier(all_keys()).verify_connect_now(&token).unwrap_err();
    assert!(matches!(err, TokenError::Invalid(ref m) if m.contains("InvalidSignature")), "{err:?}");
}

#[test]
fn expired_token_has_zero_leeway() {
    let v = verifier(all_keys());
    // One second in the past: jsonwebtoken's default 60 s leeway would accept it.
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice", "exp": now() - 1}));
    assert_eq!(v.verify_connect_now(&token), Err(TokenError::Expired));
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice", "exp": 1}));
    assert_eq!(v.verify_connect_now(&token), Err(TokenError::Expired));
}

#[test]
fn not_yet_valid_token_is_invalid() {
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice", "nbf": now() + 60}));
    assert!(matches!(verifier(all_keys()).verify_connect_now(&token), Err(TokenError::Invalid(_))));
}

#[test]
fn no_exp_never_expires() {
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice"}));
    let claims = verifier(all_keys()).verify_connect_now(&token).unwrap();
    assert_eq!(claims.expires_at, None);
}

#[test]
fn missing_sub_is_empty_user() {
    let token = hs(Algorithm::HS256, SECRET, json!({}));
    assert_eq!(verifier(all_keys()).verify_connect_now(&token).unwrap().user, "");
}

#[test]
fn info_claim_is_carried_as_raw_json() {
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice", "info": {"name": "Alice", "tags": [1, 2]}}));
    let claims = verifier(all_keys()).verify_connect_now(&token).unwrap();
    let info = claims.info.unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(parsed, json!({"name": "Alice", "tags": [1, 2]}));
    // Raw text, not re-encoded or base64.
    assert_eq!(&info[..], br#"{"name":"Alice","tags":[1,2]}"#);

    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "a", "info": "plain"}));
    assert_eq!(verifier(all_keys()).verify_connect_now(&token).unwrap().info.unwrap(), &b"\"plain\""[..]);
}

#[test]
fn channels_claim() {
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice", "channels": ["news", "chat:room"]}));
    let claims = verifier(all_keys()).verify_connect_now(&token).unwrap();
    assert_eq!(claims.channels, vec!["news".to_string(), "chat:room".to_string()]);
}

#[test]
fn malformed_claims_are_invalid() {
    let v = verifier(all_keys());
    for claims in [json!({"sub": 5}), json!({"channels": "news"}), json!({"exp": "soon"})] {
        let token = hs(Algorithm::HS256, SECRET, claims.clone());
        assert!(matches!(v.verify_connect_now(&token), Err(TokenError::Invalid(_))), "{claims}");
    }
    for junk in ["", "abc", "a.b.c", "....", "eyJhbGciOiJub25lIn0.e30.", "\u{0}\u{ffff}"] {
        assert!(matches!(v.verify_connect_now(junk), Err(TokenError::Invalid(_))), "{junk:?}");
    }
}

#[test]
fn rs256_and_rs512() {
    let v = verifier(all_keys());
    for alg in [Algorithm::RS256, Algorithm::RS512] {
        let token = rs(alg, json!({"sub": "carol", "exp": now() + 60}));
        assert_eq!(v.verify_connect_now(&token).unwrap().user, "carol");
    }
}

#[test]
fn es256() {
    let token = es(json!({"sub": "dave"}));
    assert_eq!(verifier(all_keys()).verify_connect_now(&token).unwrap().user, "dave");
}

#[test]
fn es384_with_a_p256_key_is_invalid_not_a_panic() {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    // A forged header: ES384 over a P-256 signature.
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &json!({"sub": "x"}), &key).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    // base64url of {"alg":"ES384","typ":"JWT"}
    parts[0] = "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9";
    let forged = parts.join(".");
    assert!(matches!(verifier(all_keys()).verify_connect_now(&forged), Err(TokenError::Invalid(_))));
}

#[test]
fn alg_without_a_configured_key_is_invalid() {
    let only_hmac = verifier(TokenConfig { hmac_secret: Some(SECRET.into()), ..TokenConfig::default() });
    let token = rs(Algorithm::RS256, json!({"sub": "carol"}));
    let err = only_hmac.verify_connect_now(&token).unwrap_err();
    assert!(matches!(err, TokenError::Invalid(ref m) if m.contains("token.rsa_public_key")), "{err:?}");

    let only_rsa = verifier(TokenConfig { rsa_public_key: Some(RSA_PUBLIC.into()), ..TokenConfig::default() });
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "alice"}));
    assert!(matches!(only_rsa.verify_connect_now(&token), Err(TokenError::Invalid(_))));

    let none = verifier(TokenConfig::default());
    assert!(!none.is_configured());
    assert!(matches!(none.verify_connect_now(&token), Err(TokenError::Invalid(_))));
}

#[test]
fn hmac_token_signed_with_the_rsa_public_key_is_refused() {
    // The classic alg-confusion attack: HS256 keyed with the public PEM text.
    let cfg = TokenConfig { rsa_public_key: Some(RSA_PUBLIC.into()), ..TokenConfig::default() };
    let token = hs(Algorithm::HS256, RSA_PUBLIC, json!({"sub": "mallory"}));
    assert!(matches!(verifier(cfg).verify_connect_now(&token), Err(TokenError::Invalid(_))));
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let cfg = TokenConfig { audience: Some("hub".into()), issuer: Some("auth".into()), ..all_keys() };
    let v = verifier(cfg);
    let ok = hs(Algorithm::HS256, SECRET, json!({"sub": "a", "aud": "hub", "iss": "auth"}));
    assert_eq!(v.verify_connect_now(&ok).unwrap().user, "a");
    for claims in [
        json!({"sub": "a", "aud": "other", "iss": "auth"}),
        json!({"sub": "a", "aud": "hub", "iss": "other"}),
        json!({"sub": "a", "iss": "auth"}),
        json!({"sub": "a", "aud": "hub"}),
    ] {
        let token = hs(Algorithm::HS256, SECRET, claims.clone());
        assert!(matches!(v.verify_connect_now(&token), Err(TokenError::Invalid(_))), "{claims}");
    }
    // Not configured: aud/iss in the token are ignored.
    let token = hs(Algorithm::HS256, SECRET, json!({"sub": "a", "aud": "x", "iss": "y"}));
    assert_eq!(verifier(all_keys()).verify_connect_now(&token).unwrap().user, "a");
}

#[test]
fn subscription_token() {
    let v = verifier(all_keys());
    let exp = now() + 60;
    let token = hs(
        Algorithm::HS256,
        SECRET,
        json!({"sub": "alice", "channel": "$secret", "exp": exp, "info": {"role": "admin"}}),
    );
    assert_eq!(
        v.verify_subscribe_now(&token).unwrap(),
        SubscribeClaims {
            user: "alice".into(),
            channel: "$secret".into(),
            expires_at: Some(exp),
            info: Some(Bytes::from_static(br#"{"role":"admin"}"#)),
        }
    );
    for claims in [json!({"sub": "alice"}), json!({"sub": "alice", "channel": ""})] {
        let token = hs(Algorithm::HS256, SECRET, claims);
        assert!(matches!(v.verify_subscribe_now(&token), Err(TokenError::Invalid(_))));
    }
    let token = hs(Algorithm::HS256, SECRET, json!({"channel": "c", "exp": now() - 1}));
    assert_eq!(v.verify_subscribe_now(&token), Err(TokenError::Expired));
}

#[test]
fn bad_pem_names_the_key() {
    let err =
        TokenVerifier::new(&TokenConfig { rsa_public_key: Some("nope".into()), ..TokenConfig::default() }).unwrap_err();
    assert_eq!(err.key(), "token.rsa_public_key");
    let err = TokenVerifier::new(&TokenConfig { ecdsa_public_key: Some(RSA_PUBLIC.into()), ..TokenConfig::default() })
        .unwrap_err();
    assert_eq!(err.key(), "token.ecdsa_public_key");
    let err =
        TokenVerifier::new(&TokenConfig { hmac_secret: Some(String::new()), ..TokenConfig::default() }).unwrap_err();
    assert_eq!(err.key(), "token.hmac_secret");
    assert!(err.to_string().starts_with("key \"token.hmac_secret\": "));
}

#[test]
fn signed_tokens_round_trip() {
    let v = verifier(all_keys());
    let claims = ConnectClaims {
        user: "alice".into(),
        expires_at: Some(expires_in(Duration::from_secs(60))),
        info: Some(Bytes::from_static(br#"{"a":1}"#)),
        channels: vec!["news".into()],
    };
    let token = sign_connect_token(SECRET, &claims).unwrap();
    assert_eq!(v.verify_connect_now(&token).unwrap(), claims);

    let sub = SubscribeClaims { user: "alice".into(), channel: "$x".into(), expires_at: None, info: None };
    let token = sign_subscribe_token(SECRET, &sub).unwrap();
    assert_eq!(v.verify_subscribe_now(&token).unwrap(), sub);

    let bad = ConnectClaims { info: Some(Bytes::from_static(b"{not json")), ..claims };
    assert!(sign_connect_token(SECRET, &bad).is_err());
    assert!(sign_connect_token("", &bad).is_err());
}

#[test]
fn a_token_serves_only_its_purpose() {
    let v = verifier(all_keys());
    // A subscription token (it names a channel) never connects: not with an `exp`,
    // not without one, not expired (the purpose is checked first, as Centrifugo does).
    for claims in [
        json!({"sub": "alice", "channel": "priv:a"}),
        json!({"sub": "alice", "channel": "priv:a", "exp": now() + 60}),
        json!({"sub": "alice", "channel": "priv:a", "exp": now() - 10}),
    ] {
        let token = hs(Algorithm::HS256, SECRET, claims.clone());
        match v.verify_connect_now(&token) {
            Err(TokenError::Invalid(reason)) => {
                assert!(reason.contains("`channel` claim"), "{reason}")
            }
            other => panic!("{claims}: want Invalid, got {other:?}"),
        }
    }
    let signed = sign_subscribe_token(
        SECRET,
        &SubscribeClaims { user: "alice".into(), channel: "priv:a".into(), expires_at: None, info: None },
    )
    .unwrap();
    assert!(matches!(v.verify_connect_now(&signed), Err(TokenError::Invalid(_))));
    // A connection token (no `channel`) never subscribes, expired or not.
    for claims in [json!({"sub": "alice"}), json!({"sub": "alice", "exp": now() - 10})] {
        let token = hs(Algorithm::HS256, SECRET, claims.clone());
        assert!(matches!(v.verify_subscribe_now(&token), Err(TokenError::Invalid(_))), "{claims}");
    }
    let signed = sign_connect_token(
        SECRET,
        &ConnectClaims { user: "alice".into(), expires_at: None, info: None, channels: vec!["priv:a".into()] },
    )
    .unwrap();
    assert!(matches!(v.verify_subscribe_now(&signed), Err(TokenError::Invalid(_))));
    // A forged token stays invalid, not expired, whatever its claims.
    let forged = hs(Algorithm::HS256, "wrong", json!({"sub": "alice", "exp": now() - 10}));
    assert!(matches!(v.verify_connect_now(&forged), Err(TokenError::Invalid(_))));
}

#[test]
fn with_a_jwks_only_rsa_and_ec_tokens_naming_a_kid_wait_for_it() {
    let cfg = TokenConfig { jwks_url: Some("http://127.0.0.1:9/jwks.json".into()), ..all_keys() };
    let v = verifier(cfg);
    let with_kid = |alg: Algorithm, key: &EncodingKey| {
        let header = Header { kid: Some("k1".into()), ..Header::new(alg) };
        jsonwebtoken::encode(&header, &json!({"sub": "a"}), key).unwrap()
    };
    // An HMAC token with a kid still uses hmac_secret; so do tokens without kid.
    let hmac = with_kid(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()));
    assert_eq!(v.verify_connect_now(&hmac).unwrap().user, "a");
    assert_eq!(v.verify_connect_now(&rs(Algorithm::RS256, json!({"sub": "b"}))).unwrap().user, "b");
    // An RSA token naming a kid needs the set, which was never fetched.
    let rsa = with_kid(Algorithm::RS256, &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap());
    let error = v.verify_connect_now(&rsa).unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(!TokenError::Expired.is_temporary() && !TokenError::Invalid(String::new()).is_temporary());
}
