/**
 * AMCT's scale/offset record file: protobuf text format of `amct.ScaleOffsetRecord`
 * (`record { key: "conv1" value { scale_d: 0.0798 offset_d: 1 scale_w: 0.0029 offset_w: 0 } }`),
 * and AMCT's checks on it (`common/utils/parse_record_file.py`).
 *
 * Order: layers are written in insertion order (the order they were first read or set), which
 * for a record built during calibration is the model's layer order; `write(file, order)` can
 * impose an explicit order (e.g. the model's layer names). Either way the output is a pure
 * function of the content and the order, so it is byte-identical across runs.
 *
 * Float fields are float32 in the schema; values are stored rounded to float32 (Math.fround) so a
 * write → read round trip gives back equal numbers.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RecordError } from '../errors';
import { QUANTIZABLE_OPS, weightChannelAxis, type Graph, type Node } from '../ir';
import { writeFileAtomic } from '../util/fs';
import { amctType, fromPlain, parseText, printText, toPlain } from '../proto';

export interface LayerRecord {
  scaleD?: number;
  offsetD?: number;
  scaleW?: number[];
  offsetW?: number[];
  shiftBit?: number[];
  /** Caffe: the layer's input shape (AMCT Caffe has no whole-net shape inference). */
  channels?: number;
  height?: number;
  width?: number;
  skipFusion?: boolean;
  /** DMQ balancer factors, one per input channel. */
  tensorBalanceFactor?: number[];
  /** NUQ cluster centres (16 or 32 int8 values). */
  cluster?: number[];
  dstType?: string;
  actType?: string;
  wtsType?: string;
  fakequantPrecisionMode?: string;
}

type Kind = 'float' | 'int' | 'floats' | 'ints' | 'bool' | 'string';

/** LayerRecord key → SingleLayerRecord field name and kind. */
const FIELDS: ReadonlyArray<readonly [keyof LayerRecord, string, Kind]> = [
  ['scaleD', 'scale_d', 'float'],
  ['offsetD', 'offset_d', 'int'],
  ['scaleW', 'scale_w', 'floats'],
  ['offsetW', 'offset_w', 'ints'],
  ['shiftBit', 'shift_bit', 'ints'],
  ['channels', 'channels', 'int'],
  ['height', 'height', 'int'],
  ['width', 'width', 'int'],
  ['skipFusion', 'skip_fusion', 'bool'],
  ['tensorBalanceFactor', 'tensor_balance_factor', 'floats'],
  ['cluster', 'cluster', 'ints'],
  ['dstType', 'dst_type', 'string'],
  ['actType', 'act_type', 'string'],
  ['wtsType', 'wts_type', 'string'],
  ['fakequantPrecisionMode', 'fakequant_precision_mode', 'string'],
];

type Plain = Record<string, unknown>;

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function field(obj: Plain | undefined, name: string): unknown {
  if (!obj) return undefined;
  return name in obj ? obj[name] : obj[camel(name)];
}

/** The field names the loaded schema uses (snake_case unless the loader camel-cased them). */
function schemaName(typeName: string, name: string): string | undefined {
  const t = amctType(typeName) as unknown as { fields?: Record<string, unknown> };
  const fields = t.fields ?? {};
  if (name in fields) return name;
  if (camel(name) in fields) return camel(name);
  return undefined;
}

function normalize(kind: Kind, v: unknown, layer: string, key: string, file?: string): unknown {
  const bad = (): RecordError =>
    new RecordError(
      `${file ? `${file}: ` : ''}${key} of layer ${layer} has an invalid value ${String(v)}`,
      {
        ...(file ? { file } : {}),
        layer,
        key,
      },
    );
  const toNum = (x: unknown): number => {
    const n =
      typeof x === 'number' ? x : typeof x === 'string' || typeof x === 'bigint' ? Number(x) : NaN;
    if (Number.isNaN(n) && !(typeof x === 'number')) throw bad();
    return n;
  };
  switch (kind) {
    case 'float':
      return Math.fround(toNum(v));
    case 'floats':
      if (!Array.isArray(v)) throw bad();
      return v.map((x) => Math.fround(toNum(x)));
    case 'int': {
      const n = toNum(v);
      if (!Number.isInteger(n)) throw bad();
      return n;
    }
    case 'ints':
      if (!Array.isArray(v)) throw bad();
      return v.map((x) => {
        const n = toNum(x);
        if (!Number.isInteger(n)) throw bad();
        return n;
      });
    case 'bool':
      if (typeof v !== 'boolean') throw bad();
      return v;
    case 'string':
      return String(v);
  }
}

function cloneRecord(r: LayerRecord): LayerRecord {
  const out: LayerRecord = {};
  for (const [k] of FIELDS) {
    const v = r[k];
    if (v !== undefined) (out as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : v;
  }
  return out;
}

/**
 * The last record files read or written in this process, by absolute path: the text and what
 * it parsed to. The flow of seed 000 reads the record it has just written (quantizeModel, the
 * last calibration forward, saveModel) and parsing the text format is the slow part (UltraFace's
 * 160 kB record: about 60 ms); a read whose file holds exactly the cached text takes the parse
 * from here. Keyed by content, so a file changed by anyone else is parsed again.
 */
const parsedRecords = new Map<string, { text: string; records: Map<string, LayerRecord> }>();
const PARSED_RECORDS_KEPT = 4;

/** Remembers `file`'s text and its records, in the order and form a parse of the text gives. */
function keepParsed(file: string, text: string, records: Iterable<[string, LayerRecord]>): void {
  const key = path.resolve(file);
  const parsed = new Map<string, LayerRecord>();
  for (const [layer, r] of records) {
    const copy = cloneRecord(r) as Record<string, unknown>;
    // a parse skips repeated fields written empty
    for (const k of Object.keys(copy)) {
      if (Array.isArray(copy[k]) && (copy[k] as unknown[]).length === 0) delete copy[k];
    }
    parsed.set(layer, copy as LayerRecord);
  }
  parsedRecords.delete(key);
  parsedRecords.set(key, { text, records: parsed });
  for (const old of parsedRecords.keys()) {
    if (parsedRecords.size <= PARSED_RECORDS_KEPT) break;
    parsedRecords.delete(old);
  }
}

export class RecordFile {
  private readonly records = new Map<string, LayerRecord>();

  /** Reads a record file; a missing or empty (whitespace-only) file gives an empty record. */
  static read(file: string): RecordFile {
    const rec = new RecordFile();
    if (!fs.existsSync(file)) return rec;
    const text = fs.readFileSync(file, 'utf8');
    if (text.trim() === '') return rec;
    const cached = parsedRecords.get(path.resolve(file));
    if (cached && cached.text === text) {
      for (const [k, r] of cached.records) rec.records.set(k, cloneRecord(r));
      return rec;
    }
    rec.parse(file, text);
    keepParsed(file, text, rec.records);
    return rec;
  }

  private parse(file: string, text: string): void {
    const type = amctType('ScaleOffsetRecord');
    let plain: Plain;
    try {
      plain = toPlain(type, parseText(type, text, file)) as Plain;
    } catch (e) {
      const err = e as Error & { line?: number; column?: number };
      throw new RecordError(
        `${err.message} (the record_file{${path.resolve(file)}} cannot be parsered, please ensure it matches with scale_offset_record.proto!)`,
        {
          file,
          ...(err.line !== undefined ? { line: err.line } : {}),
          ...(err.column !== undefined ? { column: err.column } : {}),
        },
        { cause: e },
      );
    }
    const entries = field(plain, 'record');
    for (const entry of Array.isArray(entries) ? (entries as Plain[]) : []) {
      const key = field(entry, 'key');
      if (typeof key !== 'string' || key === '') {
        throw new RecordError(`${file}: Cannot find "key" in record file.`, { file });
      }
      const value = field(entry, 'value') as Plain | undefined;
      if (!value) {
        throw new RecordError(`${file}: cannot find 'value' in ${key} in record_file.`, {
          file,
          layer: key,
        });
      }
      const partial: Record<string, unknown> = {};
      for (const [k, name, kind] of FIELDS) {
        const v = field(value, name);
        if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) continue;
        partial[k] = normalize(kind, v, key, name, file);
      }
      this.mergeIn(key, partial as LayerRecord);
    }
  }

  /** Creates or empties a record file, as AMCT's init does. */
  static clear(file: string): void {
    writeFileAtomic(file, '');
  }

  get size(): number {
    return this.records.size;
  }

  has(layer: string): boolean {
    return this.records.has(layer);
  }

  /** A copy of the layer's record, or undefined. */
  get(layer: string): LayerRecord | undefined {
    const r = this.records.get(layer);
    return r && cloneRecord(r);
  }

  /** Merges `partial` into the layer's record (fields given replace those stored). */
  set(layer: string, partial: LayerRecord): void {
    const norm: Record<string, unknown> = {};
    for (const [k, name, kind] of FIELDS) {
      const v = partial[k];
      if (v !== undefined) norm[k] = normalize(kind, v, layer, name);
    }
    this.mergeIn(layer, norm as LayerRecord);
  }

  delete(layer: string): boolean {
    return this.records.delete(layer);
  }

  /** Layer names in insertion order. */
  layers(): string[] {
    return [...this.records.keys()];
  }

  /** The record as protobuf text. `order` lists layers to put first, in that order. */
  toText(order?: readonly string[]): string {
    const keys = this.orderedKeys(order);
    const valueName = (n: string): string => {
      const s = schemaName('SingleLayerRecord', n);
      if (!s) throw new RecordError(`the record schema has no field ${n}`, { key: n });
      return s;
    };
    const entries = keys.map((key) => {
      const r = this.records.get(key) as LayerRecord;
      const value: Plain = {};
      for (const [k, name] of FIELDS) {
        const v = r[k];
        if (v === undefined) continue;
        value[valueName(name)] = Array.isArray(v) ? [...v] : v;
      }
      return { key, value };
    });
    const type = amctType('ScaleOffsetRecord');
    const msg = fromPlain(type, {
      [schemaName('ScaleOffsetRecord', 'record') ?? 'record']: entries,
    });
    return printText(type, msg);
  }

  /** Writes the record atomically; see the module note on order. */
  write(file: string, order?: readonly string[]): void {
    const text = this.toText(order);
    writeFileAtomic(file, text);
    keepParsed(
      file,
      text,
      this.orderedKeys(order).map((k) => [k, this.records.get(k)!] as [string, LayerRecord]),
    );
  }

  private orderedKeys(order?: readonly string[]): string[] {
    if (!order) return this.layers();
    const out: string[] = [];
    const seen = new Set<string>();
    for (const k of order) {
      if (this.records.has(k) && !seen.has(k)) {
        out.push(k);
        seen.add(k);
      }
    }
    for (const k of this.records.keys()) if (!seen.has(k)) out.push(k);
    return out;
  }

  private mergeIn(layer: string, partial: LayerRecord): void {
    const cur = this.records.get(layer) ?? {};
    this.records.set(layer, { ...cur, ...cloneRecord(partial) });
  }
}

// ------------------------------------------------------------------------------------------
// Validation

/** A layer the record must cover: LayerInfo fits. */
export interface RecordLayer {
  name: string;
  /** The IR node, for the expected channel counts. */
  node?: Node;
  /** Weighted layers need scale_w / offset_w; AveragePool does not. */
  hasWeight?: boolean;
}

export interface ValidateRecordOptions {
  /** With a graph, record keys that are not layers of it are errors (AMCT: "find … failure"). */
  graph?: Graph;
  /** The model file, for messages. */
  modelFile?: string;
  /** Layer names of the graph (Caffe layer names); defaults to the graph's node names. */
  graphLayerNames?: Iterable<string>;
}

const FLT_EPSILON = 1.192092896e-7;
const FLT_MAX = 3.4028234663852886e38;
const DATA_OFFSET_RANGE: [number, number] = [-128, 127];
const DATA_OFFSET_RANGE_INT16: [number, number] = [-32768, 32767];
const SHIFT_N_RANGE: [number, number] = [1, 16];

function pyBool(b: boolean): string {
  return b ? 'True' : 'False';
}

/** Output channels of the layer's weight, when known. */
function coutOf(node: Node | undefined): number | undefined {
  if (!node) return undefined;
  const info = QUANTIZABLE_OPS[node.opType];
  const w = info ? node.input(info.weightPort)?.constant : undefined;
  if (!w) return undefined;
  return w.dims[weightChannelAxis(node)];
}

/** Input channels of the layer's weight (what tensor_balance_factor scales), when known. */
function cinOf(node: Node | undefined): number | undefined {
  if (!node) return undefined;
  const info = QUANTIZABLE_OPS[node.opType];
  const w = info ? node.input(info.weightPort)?.constant : undefined;
  if (!w) return undefined;
  switch (node.opType) {
    case 'Conv':
      return (w.dims[1] ?? 0) * node.attrInt('group', 1);
    case 'ConvTranspose':
      return w.dims[0];
    case 'Gemm':
      return node.attrInt('transB', 0) === 1 ? w.dims[1] : w.dims[0];
    case 'MatMul':
      return w.dims[0];
    default:
      return undefined;
  }
}

/**
 * Checks a record against the layers to be quantized, with AMCT's rules and messages:
 * every layer present with scale_d/offset_d (and scale_w/offset_w when weighted), offsets and
 * scales in range, shift_bit all 0 or in [1, 16], equal factor lengths, 1 or Cout weight factors.
 */
export function validateRecord(
  rec: RecordFile,
  graphLayers: readonly RecordLayer[],
  file: string,
  opts: ValidateRecordOptions = {},
): void {
  const fail = (msg: string, layer?: string): RecordError =>
    new RecordError(`${file}: ${msg}`, { file, ...(layer !== undefined ? { layer } : {}) });

  if (rec.size === 0) {
    throw fail(
      'record_file is empty, no layers to be quantized. Please ensure calibration is finished by checking information!',
    );
  }
  if (opts.graph || opts.graphLayerNames) {
    const names = new Set<string>(
      opts.graphLayerNames ??
        (opts.graph as Graph).nodes.map(
          (n) => (n.meta.caffe as { layer?: string } | undefined)?.layer ?? n.name,
        ),
    );
    const model = opts.modelFile ?? opts.graph?.name ?? 'the model';
    for (const key of rec.layers()) {
      if (!names.has(key)) {
        throw fail(`find ${key} failure in ${model}. Please match ${model} and ${file}.`, key);
      }
    }
  }

  for (const layer of graphLayers) {
    const L = layer.name;
    const r = rec.get(L);
    if (!r) throw fail(`Cannot find layer '${L}' in record file`, L);
    const weighted = layer.hasWeight ?? coutOf(layer.node) !== undefined;

    for (const k of ['scaleD', 'offsetD'] as const) {
      if (r[k] === undefined) {
        const name = k === 'scaleD' ? 'scale_d' : 'offset_d';
        throw fail(
          `cannot find ${name} of layer ${L} in record_file, please check data calibration process!`,
          L,
        );
      }
    }
    if (r.dstType !== undefined && !['INT8', 'INT4'].includes(r.dstType)) {
      throw fail(`Do not support dst_type ${r.dstType} in record file`, L);
    }
    if (r.actType !== undefined && !['INT4', 'INT8', 'INT16'].includes(r.actType)) {
      throw fail(`Do not support act_type ${r.actType} in record file`, L);
    }
    if (r.wtsType !== undefined && !['INT4', 'INT6', 'INT7', 'INT8'].includes(r.wtsType)) {
      throw fail(`Do not support wts_type ${r.wtsType} in record file`, L);
    }
    if (
      r.fakequantPrecisionMode !== undefined &&
      !['DEFAULT', 'FORCE_FP16_QUANT'].includes(r.fakequantPrecisionMode)
    ) {
      throw fail(
        `Do not support fakequant_precision_mode ${r.fakequantPrecisionMode} in record file`,
        L,
      );
    }

    let scaleW = r.scaleW ?? [];
    let offsetW = r.offsetW ?? [];
    const shiftBit = r.shiftBit ?? [];
    if (weighted) {
      if (!scaleW.length) throw fail(`cannot find scale_w of layer ${L} in record_file`, L);
      if (!offsetW.length) throw fail(`cannot find offset_w of layer ${L} in record_file`, L);
    } else {
      if (scaleW.length) throw fail(`find undesirable scale_w of layer ${L} in record_file`, L);
      if (offsetW.length) throw fail(`find undesirable offset_w of layer ${L} in record_file`, L);
      if (shiftBit.length) {
        throw fail(
          `shift_bit is not support, please delete shift_bit of layer ${L} in record_file`,
          L,
        );
      }
      scaleW = [1];
      offsetW = [0];
    }

    if (r.cluster !== undefined) {
      if (![16, 32].includes(r.cluster.length)) {
        throw fail(`The length of cluster center is 16 or 32, but is ${r.cluster.length}`, L);
      }
      for (const c of r.cluster) {
        if (c < -128 || c > 127)
          throw fail(`Cluster center should between [-128, 127], but is ${c}`, L);
      }
    }

    let prefix = "scale_w's length, offset_w's length";
    if (shiftBit.length) prefix += " and shift_bit's length";
    const shiftLen = shiftBit.length || scaleW.length;
    if (scaleW.length !== offsetW.length || scaleW.length !== shiftLen) {
      throw fail(`${prefix} should be equal in layer ${L}.`, L);
    }
    const channelWise = scaleW.length > 1;
    const expect = weighted ? (channelWise ? coutOf(layer.node) : 1) : 1;
    if (expect !== undefined && scaleW.length !== expect) {
      throw fail(
        `${prefix}(${scaleW.length}) should be equal to the ${expect} when channel_wise be ${pyBool(channelWise)}. Cannot support to quantize ${L}`,
        L,
      );
    }

    const range = r.actType === 'INT16' ? DATA_OFFSET_RANGE_INT16 : DATA_OFFSET_RANGE;
    const offsetD = r.offsetD as number;
    if (!(offsetD >= range[0] && offsetD <= range[1])) {
      throw fail(`offset_d's value should be in [${range[0]}, ${range[1]}] in layer ${L}.`, L);
    }
    if (offsetW.some((o) => o !== 0)) throw fail(`offset_w's value should be 0 in layer ${L}.`, L);
    const positive = (s: number): boolean => s > 0 && s <= FLT_MAX;
    if (!positive(r.scaleD as number)) {
      throw fail(`scale_d's value shoule be in positivate range of float32 in layer ${L}.`, L);
    }
    if (!scaleW.every(positive)) {
      throw fail(`scale_w's value shoule be in positivate range of float32 in layer ${L}`, L);
    }
    const allZero = shiftBit.every((s) => s === 0);
    const inRange = shiftBit.every((s) => s >= SHIFT_N_RANGE[0] && s <= SHIFT_N_RANGE[1]);
    if (!allZero && !inRange) {
      throw fail(`shift_bit's value shoule be in [1, 16] or all be 0 in layer ${L}`, L);
    }

    const tbf = r.tensorBalanceFactor;
    if (tbf !== undefined && tbf.length) {
      if (!weighted) {
        throw fail(
          `tensor_balance_factor is not support, please delete tensor_balance_factor of layer ${L} in record_file`,
          L,
        );
      }
      const cin = cinOf(layer.node);
      if (cin !== undefined && tbf.length !== cin) {
        throw fail(
          `tensor_balance_factor's length: ${tbf.length} should be equal to the channel length of inputs of layer ${L}: ${cin}. Cannot support to quantize ${L}`,
          L,
        );
      }
      if (!tbf.every((f) => f >= FLT_EPSILON && f <= 1 / FLT_EPSILON)) {
        throw fail(
          `tensor_balance_factor's value shoule be in range[FLT_EPSILON, 1/FLT_EPSILON] of float32 in layer ${L}`,
          L,
        );
      }
    }
  }
}
