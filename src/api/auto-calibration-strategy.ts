/**
 * Roll-back strategies of accuracy_based_auto_calibration, pluggable as in AMCT: subclass
 * AutoCalibrationStrategyBase. `initialize` gets the ranking (most sensitive first); each
 * `updateQuantConfig` gets the [satisfied, loss] of the configuration it last proposed (the first
 * call: the all-quantized model's) and returns the next one, or stopFlag with the final one.
 * `rollBackConfig` maps layer -> quant_enable (false = rolled back to float); omitted layers stay
 * quantized.
 */

export interface StrategyUpdate {
  stopFlag: boolean;
  rollBackConfig: Record<string, boolean>;
}

export abstract class AutoCalibrationStrategyBase {
  abstract initialize(rankingInfo: ReadonlyArray<readonly [string, number]>): void;
  abstract updateQuantConfig(metricEval: readonly [boolean, number]): StrategyUpdate;
}

export function isStrategy(s: unknown): s is AutoCalibrationStrategyBase {
  return s instanceof AutoCalibrationStrategyBase;
}

function rollBackPrefix(names: readonly string[], count: number): Record<string, boolean> {
  return Object.fromEntries(names.map((n, i) => [n, i >= count]));
}

/**
 * AMCT's BinarySearch (binary_search_strategy.py): left = 0, right = N - 1; roll back the
 * sorted[0..mid] prefix, mid = (left + right) / 2; on failure left = mid + 1, on success
 * right = mid - 1 (remembering mid); stop when left > right with the last passing prefix.
 * At most ceil(log2(N + 1)) steps.
 */
export class BinarySearchStrategy extends AutoCalibrationStrategyBase {
  protected names: string[] = [];
  private left = 0;
  private right = -1;
  private mid: number | null = null;
  /** Index of the last element of the shortest passing prefix found, or null. */
  protected best: number | null = null;

  initialize(rankingInfo: ReadonlyArray<readonly [string, number]>): void {
    this.names = rankingInfo.map(([n]) => n);
    this.left = 0;
    this.right = this.names.length - 1;
    this.mid = null;
    this.best = null;
  }

  updateQuantConfig(metricEval: readonly [boolean, number]): StrategyUpdate {
    if (this.mid === null) {
      if (metricEval[0] || this.names.length === 0)
        return { stopFlag: true, rollBackConfig: rollBackPrefix(this.names, 0) };
    } else if (metricEval[0]) {
      this.best = this.mid;
      this.right = this.mid - 1;
    } else {
      this.left = this.mid + 1;
    }
    if (this.left > this.right) return this.stop();
    this.mid = (this.left + this.right) >> 1;
    return { stopFlag: false, rollBackConfig: rollBackPrefix(this.names, this.mid + 1) };
  }

  /** Final config: the last passing prefix, or everything rolled back when none passed. */
  protected stop(): StrategyUpdate {
    const count = this.best === null ? this.names.length : this.best + 1;
    return { stopFlag: true, rollBackConfig: rollBackPrefix(this.names, count) };
  }
}

/**
 * BinarySearch, then a greedy pass over the rolled-back prefix: from the least sensitive of it
 * (except its last layer, which the search showed is needed) to the most sensitive, re-enable
 * each layer alone and keep it quantized if the requirement still holds. When the failures come
 * from individual layers this finds exactly the layers that must stay float; it costs one step
 * per rolled-back layer beyond the binary search.
 */
export class BinarySearchGreedyStrategy extends BinarySearchStrategy {
  private phase: 'binary' | 'greedy' = 'binary';
  private rolled = new Set<string>();
  private queue: string[] = [];
  private trying: string | null = null;

  override initialize(rankingInfo: ReadonlyArray<readonly [string, number]>): void {
    super.initialize(rankingInfo);
    this.phase = 'binary';
    this.rolled = new Set();
    this.queue = [];
    this.trying = null;
  }

  override updateQuantConfig(metricEval: readonly [boolean, number]): StrategyUpdate {
    if (this.phase === 'binary') {
      const r = super.updateQuantConfig(metricEval);
      if (!r.stopFlag || this.best === null) return r;
      this.phase = 'greedy';
      this.rolled = new Set(this.names.slice(0, this.best + 1));
      this.queue = this.names.slice(0, this.best).reverse();
      return this.next();
    }
    if (metricEval[0] && this.trying !== null) this.rolled.delete(this.trying);
    return this.next();
  }

  private config(rolled: ReadonlySet<string>): Record<string, boolean> {
    return Object.fromEntries(this.names.map((n) => [n, !rolled.has(n)]));
  }

  private next(): StrategyUpdate {
    this.trying = this.queue.shift() ?? null;
    if (this.trying === null) return { stopFlag: true, rollBackConfig: this.config(this.rolled) };
    const t = new Set(this.rolled);
    t.delete(this.trying);
    return { stopFlag: false, rollBackConfig: this.config(t) };
  }
}
