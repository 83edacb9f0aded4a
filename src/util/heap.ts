/** A binary min-heap ordered by `compare`. Entries are never updated in place: push a new one and skip stale ones. */
export class Heap<T> {
  #items: T[] = [];
  readonly #compare: (a: T, b: T) => number;

  constructor(compare: (a: T, b: T) => number) {
    this.#compare = compare;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#compare(items[i] as T, items[parent] as T) >= 0) break;
      [items[i], items[parent]] = [items[parent] as T, items[i] as T];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.#compare(items[l] as T, items[m] as T) < 0) m = l;
        if (r < items.length && this.#compare(items[r] as T, items[m] as T) < 0) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m] as T, items[i] as T];
        i = m;
      }
    }
    return top;
  }

  /** Pop entries while `stale(top)` holds; return the first live top, or undefined. */
  peekLive(stale: (item: T) => boolean): T | undefined {
    for (;;) {
      const top = this.peek();
      if (top === undefined || !stale(top)) return top;
      this.pop();
    }
  }

  /** Keep only entries for which `keep` holds, then restore the heap order. O(n). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.#items.filter(keep);
    this.#items = [];
    for (const item of kept) this.push(item);
  }

  clear(): void {
    this.#items = [];
  }
}
