/**
 * What the chat room holds: a text and, from the demo, the sender's chosen name. Anything
 * publishing `{ text }` (the README's ten-line component, curl) talks to the demo too.
 */
export interface ChatData {
  text: string;
  name?: string;
}

/** What the demo publishes into `<room>.names` when it connects or is renamed. */
export interface Hello {
  name: string;
}

/** What scripts/ticker.mjs publishes into `ticker`. */
export interface Tick {
  seq: number;
  symbol: string;
  price: number;
  change: number;
  at: string;
}
