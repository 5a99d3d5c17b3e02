// The ring buffer behind useChannel's `messages`: bounded, oldest dropped first, order kept.
import { describe, expect, test } from 'vitest';

import { Ring } from '../src/ring.js';

describe('Ring', () => {
  test('keeps the newest `capacity` items in order across many wraps', () => {
    const ring = new Ring<number>(3);
    for (let i = 1; i <= 1000; i += 1) {
      ring.push(i);
      expect(ring.size).toBe(Math.min(i, 3));
    }
    expect(ring.toArray()).toEqual([998, 999, 1000]);
  });

  test('capacity 0 keeps nothing', () => {
    const ring = new Ring<number>(0);
    ring.push(1);
    expect(ring.toArray()).toEqual([]);
  });

  test('resize keeps the newest; replace keeps the tail of a list', () => {
    const ring = new Ring<number>(5);
    for (let i = 1; i <= 7; i += 1) ring.push(i);
    ring.resize(2);
    expect(ring.toArray()).toEqual([6, 7]);
    ring.resize(4);
    ring.push(8);
    expect(ring.toArray()).toEqual([6, 7, 8]);
    ring.replace([1, 2, 3, 4, 5, 6]);
    expect(ring.toArray()).toEqual([3, 4, 5, 6]);
    ring.clear();
    expect(ring.toArray()).toEqual([]);
  });
});
