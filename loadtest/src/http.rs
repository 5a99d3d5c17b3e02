//! A minimal HTTP/1.1 client for publishers: one keep-alive connection, one
//! request at a time, `Content-Length` or chunked answers. Enough for the
//! hub's server API and the Pusher HTTP API, without a client stack whose own
//! cost would blur the measurement.

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct HttpConn {
    stream: BufReader<TcpStream>,
    host: String,
    /// The server said `Connection: close` (or the connection failed): reconnect first.
    closed: bool,
}

impl HttpConn {
    /// `base` is `http://host:port` (a path, if any, is ignored).
    pub async fn connect(base: &str) -> Result<HttpConn> {
        let rest = base.strip_prefix("http://").context("only http:// URLs")?;
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        let stream = TcpStream::connect(&host).await.with_context(|| format!("connect {host}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConn { stream: BufReader::with_capacity(64 * 1024, stream), host, closed: false })
    }

    async fn reconnect(&mut self) -> Result<()> {
        *self = HttpConn::connect(&format!("http://{}", self.host)).await?;
        Ok(())
    }

    /// POSTs `body`; returns the status and the body of the answer. A
    /// keep-alive connection the server closed is replaced and the request
    /// sent once more.
    pub async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>)> {
        if self.closed {
            self.reconnect().await?;
        }
        match self.post_once(path, headers, body).await {
            Ok(answer) => Ok(answer),
            Err(_) => {
                self.reconnect().await?;
                self.post_once(path, headers, body).await
            }
        }
    }

    async fn post_once(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let writer = self.stream.get_mut();
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(body).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    self.closed = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                    .context("bad chunk size")?;
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                line.clear();
                self.stream.read_line(&mut line).await?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok((status, body))
    }
}
