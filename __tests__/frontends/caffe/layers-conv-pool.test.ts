/**
 * Convolution, Deconvolution, InnerProduct and Pooling from hand-written prototxts (weights
 * inline as `blobs`), against typed-array implementations of Caffe's forward passes.
 */
import { rand } from './helpers';
import {
  conv2d,
  deconv2d,
  innerProduct,
  maxAbsDiff,
  pool2d,
  t,
  type ConvSpec,
  type PoolSpec,
  type T,
} from './reference';
import { blobText, head, importText, runText } from './run';

const TOL = 2e-5;

function expectClose(got: T, want: T, tol = TOL): void {
  expect(got.shape).toEqual(want.shape);
  expect(maxAbsDiff(got.data, want.data)).toBeLessThan(tol);
}

describe('Convolution', () => {
  const x = t([2, 4, 9, 8], rand(2 * 4 * 9 * 8, 11));

  it('group, dilation, kernel_h/w, stride_h/w, pad_h/w and bias', async () => {
    const spec: ConvSpec = {
      numOutput: 6,
      kernel: [3, 2],
      stride: [2, 1],
      pad: [1, 2],
      dilation: [2, 2],
      group: 2,
    };
    const w = rand(6 * 2 * 3 * 2, 12);
    const b = rand(6, 13);
    const text = `${head(x.shape)}layer {
  name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 6 group: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 2 dilation: 2 }
  ${blobText([6, 2, 3, 2], w)}
  ${blobText([6], b)}
}`;
    const out = await runText(text, { data: x });
    expectClose(out.conv!, conv2d(x, w, b, spec));
  });

  it('repeated kernel_size / pad / stride / dilation per axis, without bias', async () => {
    const spec: ConvSpec = {
      numOutput: 3,
      kernel: [3, 2],
      stride: [1, 2],
      pad: [2, 0],
      dilation: [1, 3],
    };
    const w = rand(3 * 4 * 3 * 2, 14);
    const text = `${head(x.shape)}layer {
  name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 bias_term: false kernel_size: [3, 2] stride: 1 stride: 2 pad: [2, 0] dilation: [1, 3] }
  ${blobText([3, 4, 3, 2], w)}
}`;
    const out = await runText(text, { data: x });
    expectClose(out.conv!, conv2d(x, w, null, spec));
  });

  it('depthwise (group = channels) with a channel multiplier', async () => {
    const spec: ConvSpec = { numOutput: 8, kernel: [3, 3], pad: [1, 1], stride: [2, 2], group: 4 };
    const w = rand(8 * 1 * 3 * 3, 15);
    const b = rand(8, 16);
    const text = `${head(x.shape)}layer {
  name: "dw" type: "Convolution" bottom: "data" top: "dw"
  convolution_param { num_output: 8 group: 4 kernel_size: 3 pad: 1 stride: 2 }
  ${blobText([8, 1, 3, 3], w)} ${blobText([8], b)}
}`;
    const out = await runText(text, { data: x });
    expectClose(out.dw!, conv2d(x, w, b, spec));
  });
});

describe('Deconvolution', () => {
  const x = t([2, 4, 5, 6], rand(2 * 4 * 5 * 6, 21));

  it('stride 2, pad 1, kernel 4, group 2, bias', async () => {
    const spec: ConvSpec = { numOutput: 6, kernel: [4, 4], stride: [2, 2], pad: [1, 1], group: 2 };
    const w = rand(4 * 3 * 4 * 4, 22);
    const b = rand(6, 23);
    const text = `${head(x.shape)}layer {
  name: "up" type: "Deconvolution" bottom: "data" top: "up"
  convolution_param { num_output: 6 group: 2 kernel_size: 4 stride: 2 pad: 1 }
  ${blobText([4, 3, 4, 4], w)} ${blobText([6], b)}
}`;
    const out = await runText(text, { data: x });
    expect(out.up!.shape).toEqual([2, 6, 10, 12]);
    expectClose(out.up!, deconv2d(x, w, b, spec));
  });

  it('kernel_h/w, stride_h/w, pad_h/w, dilation, no bias', async () => {
    const spec: ConvSpec = {
      numOutput: 2,
      kernel: [3, 2],
      stride: [1, 3],
      pad: [2, 0],
      dilation: [2, 1],
    };
    const w = rand(4 * 2 * 3 * 2, 24);
    const text = `${head(x.shape)}layer {
  name: "up" type: "Deconvolution" bottom: "data" top: "up"
  convolution_param { num_output: 2 bias_term: false kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 3 pad_h: 2 pad_w: 0 dilation: 2 dilation: 1 }
  ${blobText([4, 2, 3, 2], w)}
}`;
    const out = await runText(text, { data: x });
    expectClose(out.up!, deconv2d(x, w, null, spec));
  });
});

describe('InnerProduct', () => {
  const x = t([2, 3, 4, 5], rand(120, 31));

  it('axis 1 on a 4-D bottom, with bias', async () => {
    const w = rand(7 * 60, 32);
    const b = rand(7, 33);
    const text = `${head(x.shape)}layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 7 } ${blobText([7, 60], w)} ${blobText([7], b)} }`;
    const out = await runText(text, { data: x });
    expectClose(out.fc!, innerProduct(x, w, b, 7));
  });

  it('axis 2 keeps the leading axes', async () => {
    const w = rand(3 * 20, 34);
    const b = rand(3, 35);
    const text = `${head(x.shape)}layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 3 axis: 2 } ${blobText([3, 20], w)} ${blobText([3], b)} }`;
    const out = await runText(text, { data: x });
    expectClose(out.fc!, innerProduct(x, w, b, 3, 2));
    expect(out.fc!.shape).toEqual([2, 3, 3]);
  });

  it('transpose: weight stored [K, N]; bias_term false; axis -1', async () => {
    const w = rand(5 * 4, 36);
    const text = `${head(x.shape)}layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 4 transpose: true bias_term: false axis: -1 } ${blobText([5, 4], w)} }`;
    const out = await runText(text, { data: x });
    expectClose(out.fc!, innerProduct(x, w, null, 4, 3, true));
    expect(out.fc!.shape).toEqual([2, 3, 4, 4]);
  });
});

describe('Pooling', () => {
  // geometries: [name, H, W, spec]; several end with a window Caffe's ceil mode adds, clips to
  // H + pad (AVE divisor), or drops because it would start inside the padding
  const cases: [string, number, number, PoolSpec, number[]][] = [
    ['k3s2_ceil_adds_window', 8, 8, { pool: 'MAX', kernel: [3, 3], stride: [2, 2] }, [4, 4]],
    ['k3s2_exact', 7, 7, { pool: 'MAX', kernel: [3, 3], stride: [2, 2] }, [3, 3]],
    ['k2s2_odd', 5, 7, { pool: 'MAX', kernel: [2, 2], stride: [2, 2] }, [3, 4]],
    ['k3s2p1', 6, 7, { pool: 'MAX', kernel: [3, 3], stride: [2, 2], pad: [1, 1] }, [4, 4]],
    [
      'k2s2p1_drops_last',
      5,
      5,
      { pool: 'MAX', kernel: [2, 2], stride: [2, 2], pad: [1, 1] },
      [3, 3],
    ],
    ['k3s3p1', 7, 8, { pool: 'MAX', kernel: [3, 3], stride: [3, 3], pad: [1, 1] }, [3, 3]],
    ['hw_params', 9, 7, { pool: 'MAX', kernel: [3, 2], stride: [2, 1], pad: [1, 0] }, [5, 6]],
    ['floor', 8, 8, { pool: 'MAX', kernel: [3, 3], stride: [2, 2], floor: true }, [3, 3]],
  ];
  const aveCases = cases.map(
    ([n, h, w, s, o]) =>
      [`ave_${n}`, h, w, { ...s, pool: 'AVE' }, o] as [string, number, number, PoolSpec, number[]],
  );

  function layerText(name: string, s: PoolSpec): string {
    const [kh, kw] = s.kernel;
    const [sh, sw] = s.stride ?? [1, 1];
    const [ph, pw] = s.pad ?? [0, 0];
    const p = [
      `pool: ${s.pool}`,
      kh === kw ? `kernel_size: ${kh}` : `kernel_h: ${kh} kernel_w: ${kw}`,
      sh === sw ? `stride: ${sh}` : `stride_h: ${sh} stride_w: ${sw}`,
      ph === pw ? `pad: ${ph}` : `pad_h: ${ph} pad_w: ${pw}`,
      s.floor ? 'round_mode: FLOOR' : '',
    ].join(' ');
    return `layer { name: "${name}" type: "Pooling" bottom: "data" top: "${name}" pooling_param { ${p} } }\n`;
  }

  it.each([...cases, ...aveCases])(
    '%s matches Caffe, output size included',
    async (name, h, w, spec, hw) => {
      const x = t([2, 3, h, w], rand(2 * 3 * h * w, h * 31 + w));
      const out = await runText(head(x.shape) + layerText(name, spec), { data: x });
      const want = pool2d(x, spec);
      expect(want.shape.slice(2)).toEqual(hw);
      expectClose(out[name]!, want, 1e-6);
    },
  );

  it('many geometries in one net (sweep of H, kernel, stride, pad)', async () => {
    const x = t([1, 2, 11, 10], rand(220, 41));
    const specs: [string, PoolSpec][] = [];
    for (const pool of ['MAX', 'AVE'] as const) {
      for (const k of [2, 3, 4]) {
        for (const s of [1, 2, 3]) {
          for (let p = 0; p < k; p++)
            specs.push([
              `${pool}_k${k}_s${s}_p${p}`,
              { pool, kernel: [k, k], stride: [s, s], pad: [p, p] },
            ]);
        }
      }
    }
    const text = head(x.shape) + specs.map(([n, s]) => layerText(n, s)).join('');
    const out = await runText(text, { data: x });
    for (const [n, s] of specs) {
      const want = pool2d(x, s);
      expect([n, out[n]!.shape]).toEqual([n, want.shape]);
      expect([n, maxAbsDiff(out[n]!.data, want.data) < 1e-6]).toEqual([n, true]);
    }
  });

  it('global MAX and AVE pooling', async () => {
    const x = t([2, 3, 5, 6], rand(180, 42));
    const text = `${head(x.shape)}layer { name: "gmax" type: "Pooling" bottom: "data" top: "gmax" pooling_param { pool: MAX global_pooling: true } }
layer { name: "gave" type: "Pooling" bottom: "data" top: "gave" pooling_param { pool: AVE global_pooling: true } }`;
    const out = await runText(text, { data: x });
    expectClose(out.gmax!, pool2d(x, { pool: 'MAX', kernel: [0, 0], global: true }), 1e-6);
    expectClose(out.gave!, pool2d(x, { pool: 'AVE', kernel: [0, 0], global: true }), 1e-6);
    expect(out.gave!.shape).toEqual([2, 3, 1, 1]);
  });

  it('refuses STOCHASTIC pooling and a mask top', () => {
    const base = head([1, 1, 4, 4]);
    expect(() =>
      importText(
        `${base}layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: STOCHASTIC kernel_size: 2 } }`,
      ),
    ).toThrow(/layer 'p' \(Pooling\) uses pool method STOCHASTIC/);
    expect(() =>
      importText(
        `${base}layer { name: "p" type: "Pooling" bottom: "data" top: "p" top: "mask" pooling_param { kernel_size: 2 } }`,
      ),
    ).toThrow(/mask/);
  });
});
