/**
 * A bounded ring buffer: `push` is O(1) and never copies; the oldest item is overwritten
 * once `capacity` items are held. Internal to the package (`useChannel`'s message list).
 */
/** @internal */
export class Ring<T> {
  private items: (T | undefined)[] = [];
  private start = 0;
  private count = 0;

  constructor(private cap: number) {
    this.cap = Math.max(0, Math.floor(cap));
  }

  get capacity(): number {
    return this.cap;
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.cap === 0) return;
    if (this.count < this.cap) {
      this.items[(this.start + this.count) % this.cap] = item;
      this.count += 1;
    } else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.cap;
    }
  }

  /** The items, oldest first (a new array). */
  toArray(): T[] {
    const out = new Array<T>(this.count);
    for (let i = 0; i < this.count; i += 1) out[i] = this.items[(this.start + i) % this.cap] as T;
    return out;
  }

  /** Replaces the content with the last `capacity` items of `list`. */
  replace(list: readonly T[]): void {
    this.clear();
    for (const item of list.slice(Math.max(0, list.length - this.cap))) this.push(item);
  }

  /** Changes the capacity, keeping the newest items. */
  resize(capacity: number): void {
    const kept = this.toArray();
    this.cap = Math.max(0, Math.floor(capacity));
    this.replace(kept);
  }

  clear(): void {
    this.items = [];
    this.start = 0;
    this.count = 0;
  }
}
