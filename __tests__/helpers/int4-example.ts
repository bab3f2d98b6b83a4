/**
 * The checks shared by the tests of the INT4 QAT-vs-PTQ examples (digits_retrain_int4.ts,
 * fashion_retrain_int4.ts): run the example twice, then assert that its figures are what plain
 * onnxruntime computes on the saved models, that both models really are 4-bit, that the second
 * run gives the same per-image results (seeded shuffles), and that the counts match the ones
 * docs/qat.md reports within `slack` images. QAT > PTQ is asserted only where a spec sets
 * `qatAbovePtq`, i.e. where docs/qat.md reports a significant QAT win; each test's header says
 * what the documented difference means.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import type { NdArray } from 'ndarray';
import { mcnemarExact, type Int4Comparison } from '../../examples/common/int4-compare';
import { loadOnnxModel } from '../../src/frontends/onnx/import';
import { argmaxRows } from './fixtures';

export interface Int4ExampleSpec {
  title: string;
  /** runs the example's `main` on its test split, writing under `outDir` */
  run(outDir: string): Promise<Int4Comparison>;
  /** the FP32 model and the scored images, read independently of the example */
  fp32Model: string;
  input: string;
  scored(): { x: NdArray<Float32Array>; labels: number[] };
  /** layers whose `${layer}.weight_quantized` must hold 4-bit values */
  layers: string[];
  /** docs/qat.md: right answers of the scored images, and the discordant counts */
  doc: { fp32: number; ptq: number; qat: number; ptqOnly: number; qatOnly: number };
  /** float rounding on another CPU may flip a borderline image or so, not more */
  slack: number;
  /** docs/qat.md's mean cross-entropies, checked within 0.002 where given */
  docLoss?: { fp32: number; ptq: number; qat: number };
  /**
   * Set only where docs/qat.md reports QAT significantly above PTQ: the rerun must show QAT top-1
   * and cross-entropy better than PTQ's, with an exact McNemar p below `maxP`.
   */
  qatAbovePtq?: { maxP: number };
  timeoutMs: number;
}

/** Per-image hits of an .onnx model on the scored images, by plain ORT. */
async function ortHits(spec: Int4ExampleSpec, file: string): Promise<boolean[]> {
  const { x, labels } = spec.scored();
  const s = await ort.InferenceSession.create(file);
  const y = (await s.run({ [spec.input]: new ort.Tensor('float32', x.data, x.shape) }))[
    s.outputNames[0]!
  ]!.data as Float32Array;
  await s.release();
  return argmaxRows(y, labels.length).map((p, k) => p === labels[k]);
}

const right = (h: readonly boolean[]): number => h.filter(Boolean).length;

export function describeInt4Example(spec: Int4ExampleSpec): void {
  describe(spec.title, () => {
    let dir: string;
    let r: Int4Comparison;
    let again: Int4Comparison;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-int4-qat-'));
      r = await spec.run(path.join(dir, 'a'));
      again = await spec.run(path.join(dir, 'b'));
    }, spec.timeoutMs);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('scores FP32, PTQ and QAT as plain onnxruntime does on the saved models', async () => {
      const images = spec.scored().labels.length;
      expect(r.scoredOn).toBe('test');
      expect(r.images).toBe(images);
      expect(r.fp32).toBeCloseTo((100 * right(await ortHits(spec, spec.fp32Model))) / images, 6);
      const ptq = await ortHits(spec, r.ptqModel);
      const qat = await ortHits(spec, r.qatModel);
      expect(ptq).toEqual(r.ptqHits);
      expect(qat).toEqual(r.qatHits);
      expect(r.ptq).toBeCloseTo((100 * right(ptq)) / images, 6);
      expect(r.qat).toBeCloseTo((100 * right(qat)) / images, 6);
      expect(r.ptqOnly).toBe(ptq.filter((h, i) => h && !qat[i]).length);
      expect(r.qatOnly).toBe(qat.filter((h, i) => h && !ptq[i]).length);
      expect(r.p).toBeCloseTo(mcnemarExact(r.ptqOnly, r.qatOnly), 12);
    });

    it('quantizes the weights of both saved models to 4 bits', () => {
      for (const file of [r.ptqModel, r.qatModel]) {
        const g = loadOnnxModel(file).graph;
        for (const layer of spec.layers) {
          const w = g.initializers.get(`${layer}.weight_quantized`)!.constant!;
          expect(w.dtype).toBe('int8');
          for (const v of w.data as Int8Array) expect(v >= -8 && v <= 7).toBe(true);
        }
      }
    });

    it('is deterministic and matches the documented figures', () => {
      expect(again.ptqHits).toEqual(r.ptqHits);
      expect(again.qatHits).toEqual(r.qatHits);
      const n = (pct: number): number => Math.round((pct * r.images) / 100);
      const { doc, slack } = spec;
      expect(Math.abs(n(r.fp32) - doc.fp32)).toBeLessThanOrEqual(slack);
      expect(Math.abs(n(r.ptq) - doc.ptq)).toBeLessThanOrEqual(slack);
      expect(Math.abs(n(r.qat) - doc.qat)).toBeLessThanOrEqual(slack);
      expect(Math.abs(r.ptqOnly - doc.ptqOnly)).toBeLessThanOrEqual(slack);
      expect(Math.abs(r.qatOnly - doc.qatOnly)).toBeLessThanOrEqual(slack);
      if (spec.docLoss)
        for (const k of ['fp32', 'ptq', 'qat'] as const)
          expect(Math.abs(r.loss[k] - spec.docLoss[k])).toBeLessThanOrEqual(0.002);
    });

    if (spec.qatAbovePtq) {
      const { maxP } = spec.qatAbovePtq;
      it(`scores QAT above 4-bit PTQ, McNemar p < ${maxP} (the documented win)`, () => {
        expect(r.qat).toBeGreaterThan(r.ptq);
        expect(r.qatOnly).toBeGreaterThan(r.ptqOnly);
        expect(r.loss.qat).toBeLessThan(r.loss.ptq);
        expect(r.p).toBeLessThan(maxP);
      });
    }
  });
}
