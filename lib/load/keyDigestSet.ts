/**
 * A set of 64-bit digests of item keys: open addressing in one Uint32Array, 8 bytes a slot, grown at 70 % load,
 * so 11–23 bytes per key (about 64 MiB for 3 million items) instead of ~100 bytes for a Set of key strings.
 * Two different keys may share a digest: a hit only means "maybe a duplicate", and callers confirm it exactly.
 */
export class KeyDigestSet {
  private slots: Uint32Array;
  private mask: number;
  size = 0;
  private high = 0;
  private low = 0;

  constructor(initialSlots = 1 << 16) {
    let capacity = 16;
    while (capacity < initialSlots) capacity *= 2;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
  }

  /** Adds the key's digest; false if the digest was already there. */
  add(pk: string, sk: string): boolean {
    this.digest(pk, sk);
    const found = this.find(this.high, this.low);
    if (found >= 0) return false;
    const slot = ~found;
    this.slots[slot * 2] = this.high;
    this.slots[slot * 2 + 1] = this.low;
    this.size++;
    if (this.size > (this.mask + 1) * 0.7) this.grow();
    return true;
  }

  has(pk: string, sk: string): boolean {
    this.digest(pk, sk);
    return this.find(this.high, this.low) >= 0;
  }

  /** Slot of the digest if present, else ~(the free slot where it would go). */
  private find(high: number, low: number): number {
    const slots = this.slots;
    let slot = high & this.mask;
    for (;;) {
      const storedLow = slots[slot * 2 + 1]!;
      if (storedLow === 0) return ~slot;
      if (storedLow === low && slots[slot * 2] === high) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
    for (let index = 0; index < old.length; index += 2) {
      const low = old[index + 1]!;
      if (low === 0) continue;
      const high = old[index]!;
      const slot = ~this.find(high, low);
      this.slots[slot * 2] = high;
      this.slots[slot * 2 + 1] = low;
    }
  }

  /** Two independent 32-bit multiplicative hashes of (pk length, pk, sk), each with a murmur3 finaliser. */
  private digest(pk: string, sk: string): void {
    let h1 = 0x811c9dc5 ^ pk.length;
    let h2 = 0x9747b28c ^ Math.imul(pk.length, 0x5bd1e995);
    for (let index = 0; index < pk.length + sk.length; index++) {
      const code = index < pk.length ? pk.charCodeAt(index) : sk.charCodeAt(index - pk.length);
      h1 = Math.imul(h1 ^ code, 0x01000193);
      h2 = Math.imul(h2 ^ code, 0x5bd1e995);
      h2 ^= h2 >>> 13;
    }
    this.high = finalise(h1) >>> 0;
    // 0 marks an empty slot, so the low half is never 0 (63 bits of digest remain).
    this.low = finalise(h2) >>> 0 || 1;
  }
}

function finalise(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
