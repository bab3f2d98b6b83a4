import type { Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { bool, has, num, nums } from './common';

/**
 * Data-like layers (Data, ImageData, HDF5Data, MemoryData, DummyData, WindowData): their tops
 * become graph inputs, fed by the caller. Shapes come from the layer parameters where Caffe
 * knows them before reading data; open sizes are null. The first top is [batch, C, H, W], the
 * others (labels) [batch]. HDF5Data tops are assumed [batch, ?, ?, ?] and [batch].
 */
export function lowerDataLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(0, [1, Infinity]);
  const transform = ctx.param('transformParam');
  const crop =
    has(transform, 'cropSize') && num(transform, 'cropSize', 0) > 0
      ? num(transform, 'cropSize', 0)
      : null;
  const label = (b: number | null): Shape => [b];
  let first: Shape;
  switch (ctx.type) {
    case 'Data': {
      const b = nullable(num(ctx.param('dataParam'), 'batchSize', 0));
      first = [b, null, crop, crop];
      return ctx.topNames.map((_, i) => ctx.input(i, i === 0 ? first : label(b)));
    }
    case 'ImageData': {
      const p = ctx.param('imageDataParam');
      const b = nullable(num(p, 'batchSize', 1));
      const c = bool(p, 'isColor', true) ? 3 : 1;
      first = [
        b,
        c,
        crop ?? nullable(num(p, 'newHeight', 0)),
        crop ?? nullable(num(p, 'newWidth', 0)),
      ];
      return ctx.topNames.map((_, i) => ctx.input(i, i === 0 ? first : label(b)));
    }
    case 'WindowData': {
      const p = ctx.param('windowDataParam');
      const b = nullable(num(p, 'batchSize', 0));
      const c = nullable(num(p, 'cropSize', 0)) ?? crop;
      first = [b, 3, c, c];
      return ctx.topNames.map((_, i) => ctx.input(i, i === 0 ? first : label(b)));
    }
    case 'MemoryData': {
      const p = ctx.param('memoryDataParam');
      const b = nullable(num(p, 'batchSize', 0));
      first = [
        b,
        nullable(num(p, 'channels', 0)),
        nullable(num(p, 'height', 0)),
        nullable(num(p, 'width', 0)),
      ];
      return ctx.topNames.map((_, i) => ctx.input(i, i === 0 ? first : label(b)));
    }
    case 'HDF5Data': {
      const b = nullable(num(ctx.param('hdf5DataParam'), 'batchSize', 0));
      return ctx.topNames.map((_, i) => ctx.input(i, i === 0 ? [b, null, null, null] : label(b)));
    }
    case 'DummyData': {
      const p = ctx.param('dummyDataParam');
      const shapes = ((p.shape as { dim?: number[] }[] | undefined) ?? []).map((s) =>
        (s.dim ?? []).map(Number),
      );
      const legacy = ['num', 'channels', 'height', 'width'].map((k) => nums(p, k));
      const n = ctx.topNames.length;
      const pick = <T>(arr: T[], i: number): T | undefined => (arr.length === 1 ? arr[0] : arr[i]);
      return ctx.topNames.map((_, i) => {
        const s = pick(shapes, i);
        if (s) return ctx.input(i, s);
        const dims = legacy.map((a) => pick(a, i));
        if (dims.some((d) => d === undefined)) {
          throw ctx.formatError(`gives no shape for top ${i} of ${n}`);
        }
        return ctx.input(i, dims as number[]);
      });
    }
    default:
      throw ctx.unsupported(`is a data layer of an unknown kind`);
  }
}

function nullable(n: number): number | null {
  return n > 0 ? n : null;
}
