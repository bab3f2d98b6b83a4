/**
 * How far a quantized layer's output is from the float one (research §7.2 step 3), pluggable as
 * in AMCT: subclass SensitivityBase and pass an instance as `sensitivity`.
 */

export abstract class SensitivityBase {
  /**
   * true when larger compare() values mean "closer to float" (a similarity, e.g. cosine), false
   * when they mean "further" (a distance, e.g. MSE). The ranking puts the most sensitive first.
   */
  abstract readonly higherIsSimilar: boolean;
  /** `data`: the float layer's output; `other`: the quantized layer's output on the same input. */
  abstract compare(data: Float32Array, other: Float32Array): number;
}

/** AMCT's CosineSimilarity: 0.5 + 0.5 cos(a, b); 1 when a is all zero, 0 when only b is. */
export class CosineSimilarity extends SensitivityBase {
  readonly higherIsSimilar = true;
  compare(data: Float32Array, other: Float32Array): number {
    let dot = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < data.length; i++) {
      const a = data[i]!;
      const b = other[i]!;
      dot += a * b;
      aa += a * a;
      bb += b * b;
    }
    if (aa === 0) return 1;
    if (bb === 0) return 0;
    return 0.5 + (0.5 * dot) / Math.sqrt(aa * bb);
  }
}

/**
 * Mean squared error between the outputs (a distance). With `doNormalization` both are divided
 * by the float output's L2 norm first, so layers of different scales compare fairly.
 */
export class MseSensitivity extends SensitivityBase {
  readonly higherIsSimilar = false;
  constructor(readonly doNormalization = false) {
    super();
  }
  compare(data: Float32Array, other: Float32Array): number {
    let norm = 1;
    if (this.doNormalization) {
      let s = 0;
      for (let i = 0; i < data.length; i++) s += data[i]! * data[i]!;
      norm = s > 0 ? Math.sqrt(s) : 1;
    }
    let e = 0;
    for (let i = 0; i < data.length; i++) {
      const d = (data[i]! - other[i]!) / norm;
      e += d * d;
    }
    return data.length ? e / data.length : 0;
  }
}
