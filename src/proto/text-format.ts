/**
 * Protobuf text format (prototxt, .cfg, record files) for every schema in `proto/`: one
 * implementation, protobufjs's `ext/textformat`, driven by reflection. This module adds what a
 * user needs when a file is wrong: every error names the file, line:column and the field path
 * (`layer[3] "conv2" > convolution_param > num_output`).
 */
import * as fs from 'fs';
import type * as protobuf from 'protobufjs';
import * as textformat from 'protobufjs/ext/textformat';
import { TextFormatError } from '../errors';
import { writeFileAtomic } from '../util/fs';

export type Plain = Record<string, unknown>;

const LINE_SUFFIX = / \(line (\d+)\)$/;

interface Failure {
  message: string;
  line?: number;
}

function tryParse(type: protobuf.Type, text: string): Failure | null {
  try {
    textformat.fromText(type, text);
    return null;
  } catch (e) {
    const raw = e instanceof Error ? e.message : String(e);
    const m = LINE_SUFFIX.exec(raw);
    return m ? { message: raw.slice(0, m.index), line: Number(m[1]) } : { message: raw };
  }
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/** Characters that end a token of protobufjs's text-format tokenizer. */
const TOKEN_END = /[\s{}<>:[\],;\-"'#]/;

/**
 * Where in `text` the parse fails with `failure`: the shortest prefix, cut at a token boundary,
 * that fails the same way ends with the offending token. Cutting only at token boundaries keeps
 * a truncated earlier value (`MAX` cut to `MA`) from failing the same way. Errors found only
 * after the whole text is read (missing required fields) have no place here. Binary search, so
 * a failing file costs O(n log n) once. Returns `text.length` for a failure at the end of the
 * input (an unclosed message).
 */
function locate(type: protobuf.Type, text: string, failure: Failure): number | undefined {
  const sameAs = (t: string): boolean => {
    const f = tryParse(type, t);
    return (
      f !== null &&
      f.message === failure.message &&
      (failure.line === undefined || f.line === failure.line)
    );
  };
  const same = (len: number): boolean => sameAs(text.slice(0, len));
  if (!same(text.length)) return undefined;
  // the input ends inside a string: its opening quote
  if (failure.message === 'unterminated string' || failure.message === 'illegal string escape') {
    return tokenStart(text, text.length);
  }
  // "expected X" also fails any prefix that ends where X is due (`name:` before `name: 5`).
  // A prefix followed by an unterminated string on a new line fails that way only if the
  // parser read past the prefix's end; when it failed on a token of its own, it never gets there.
  const expected = failure.line !== undefined && /^expected /.test(failure.message);
  const test = expected ? (len: number) => sameAs(`${text.slice(0, len)}\n"`) : same;
  const starts = lineStarts(text);
  // A prefix ending before the line cannot fail on it; search within [lo, text.length].
  const lo = failure.line !== undefined ? (starts[failure.line - 1] ?? 0) : 0;
  if (expected ? !test(text.length) : same(lo)) return text.length; // fails on the end of input
  const cuts: number[] = [];
  for (let j = lo + 1; j < text.length; j++) {
    if (TOKEN_END.test(text.charAt(j - 1)) || TOKEN_END.test(text.charAt(j))) cuts.push(j);
  }
  cuts.push(text.length);
  let a = -1; // cuts[a] fails otherwise (or is lo)
  let b = cuts.length - 1; // cuts[b] fails the same way
  while (b - a > 1) {
    const mid = (a + b) >> 1;
    if (test(cuts[mid]!)) b = mid;
    else a = mid;
  }
  return tokenStart(text, cuts[b]! - 1);
}

/** Start of the token holding offset `i` (a word, number, or quoted string). */
function tokenStart(text: string, i: number): number {
  // inside a string (or on the line break that ends an unterminated one): its opening quote
  const lineStart = text.lastIndexOf('\n', i - 1) + 1;
  let open = -1;
  for (let j = lineStart; j < i; j++) {
    const c = text.charAt(j);
    if (open >= 0) {
      if (c === '\\') j++;
      else if (c === text.charAt(open)) open = -1;
    } else if (c === '"' || c === "'") {
      open = j;
    } else if (c === '#') {
      break;
    }
  }
  if (open >= 0) return open;
  let s = i;
  while (s > lineStart && /[\w.+\-]/.test(text.charAt(s - 1)) && /[\w.+\-]/.test(text.charAt(s)))
    s--;
  return s;
}

/** Fields whose string value names the message that holds them in a field path. */
const LABEL_FIELDS = new Set(['name', 'key', 'layer_name', 'layer_type', 'layerName', 'layerType']);

interface Frame {
  /** `layer[3]`, `convolution_param`. */
  label: string;
  /** The message type, when the scan has a schema and the field is known. */
  type?: protobuf.Type;
  /** Where the field name (or the brace, when there is none) that opened the message starts. */
  offset: number;
  counts: Map<string, number>;
  /** Field names set in this message. */
  seen: Set<string>;
  /** The quoted `name:` (or `key:`, `layer_name:`) value, for the path. */
  name?: string;
  /** Inside `field: [ ... ]`: the list's field name. */
  list?: string;
}

interface ScanState {
  stack: Frame[];
  /** The field name being read (the last word in field-name position), and where it starts. */
  field: string;
  fieldOffset: number;
}

/** The field `name` (as written in text) of `type`, or undefined. */
function lookupField(type: protobuf.Type | undefined, name: string): protobuf.Field | undefined {
  if (!type) return undefined;
  const camel = name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  return type.fields[name] ?? type.fields[camel] ?? undefined;
}

// Text-format tokens: comments, strings (possibly unterminated), numbers (1.5e-3, 0x1F, .5),
// words, punctuation, and any other single character.
const TOKEN =
  /#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|(?:\.?[0-9])(?:[eE][+-]|[\w.])*|[A-Za-z_][\w.]*|[^\s]/g;

/**
 * Walks the tokens of `text` that start before `end`, keeping the stack of open messages.
 * `onClose` sees every message closed on the way (and, at the end, those still open).
 */
function scan(
  text: string,
  end: number,
  type: protobuf.Type | undefined,
  onClose?: (frame: Frame, path: Frame[]) => void,
): ScanState {
  const root: Frame = { label: '', type, offset: 0, counts: new Map(), seen: new Set() };
  const st: ScanState = { stack: [root], field: '', fieldOffset: 0 };
  let expectValue = false; // after ':' the next token is the field's value, not a field name
  let afterField = false; // the previous token was a field name
  const tokens = new RegExp(TOKEN.source, 'g');
  let m: RegExpExecArray | null;
  while ((m = tokens.exec(text)) !== null && m.index < end) {
    const t = m[0];
    const top = st.stack[st.stack.length - 1]!;
    const c = t.charAt(0);
    if (c === '#') continue;
    const fieldBefore: boolean = afterField;
    afterField = false;
    if (t === '{' || t === '<') {
      const fieldName = top.list ?? st.field;
      const field = lookupField(top.type, fieldName);
      const n = top.counts.get(fieldName) ?? 0;
      top.counts.set(fieldName, n + 1);
      top.seen.add(fieldName);
      // with a schema, only repeated fields get an index
      const indexed = !top.type || !field || field.repeated || field.map;
      const sub = field?.resolve().resolvedType;
      st.stack.push({
        label: indexed ? `${fieldName}[${n}]` : fieldName,
        type: sub && 'fieldsArray' in sub ? (sub as protobuf.Type) : undefined,
        offset: top.list !== undefined ? m.index : st.fieldOffset,
        counts: new Map(),
        seen: new Set(),
      });
      if (top.list === undefined) st.field = '';
      expectValue = false;
    } else if (t === '}' || t === '>') {
      if (st.stack.length > 1) {
        const closed = st.stack.pop()!;
        onClose?.(closed, st.stack);
      }
      const now = st.stack[st.stack.length - 1]!;
      st.field = now.list ?? '';
      expectValue = false;
    } else if (t === '[') {
      // a list value (`field: [...]`, `field [{...}]`), not an extension name
      if (top.list === undefined && st.field && (expectValue || fieldBefore)) top.list = st.field;
      expectValue = false;
    } else if (t === ']') {
      top.list = undefined;
      expectValue = false;
    } else if (t === ':') {
      expectValue = true;
      afterField = fieldBefore;
    } else if (t === '-' || t === ',' || t === ';') {
      // a sign keeps the value pending; separators end nothing
    } else if (c === '"' || c === "'") {
      const closed =
        t.length > 1 && t.endsWith(c) && !/\\$/.test(t.slice(0, -1).replace(/\\\\/g, ''));
      if (
        LABEL_FIELDS.has(st.field) &&
        top.name === undefined &&
        closed &&
        (expectValue || top.list)
      ) {
        top.name = t;
      }
      expectValue = false;
    } else if (/^[A-Za-z_]/.test(t) && !expectValue && top.list === undefined) {
      st.field = t;
      st.fieldOffset = m.index;
      top.seen.add(t);
      afterField = true;
    } else {
      expectValue = false; // a number or word value
    }
  }
  if (onClose)
    for (let i = st.stack.length - 1; i >= 0; i--) onClose(st.stack[i]!, st.stack.slice(0, i));
  return st;
}

function framePath(frames: Frame[]): string[] {
  return frames.slice(1).map((f) => (f.name ? `${f.label} ${f.name}` : f.label));
}

/**
 * The field path at `offset`: the message fields opened and not yet closed, with the index of
 * repeated ones and the `name:` they hold when there is one, ending with the field being read
 * (`layer[3] "conv2" > convolution_param > num_output`). Without `type` the scan cannot tell
 * repeated fields from singular ones, and every message field gets an index.
 */
export function fieldPathAt(text: string, offset: number, type?: protobuf.Type): string {
  const st = scan(text, offset, type);
  const parts = framePath(st.stack);
  const top = st.stack[st.stack.length - 1]!;
  const field = top.list ?? st.field;
  if (field) parts.push(field);
  return parts.join(' > ');
}

/**
 * Where a `<Type>.<field>: missing required field` failure is: the first message of that type,
 * in text order, that does not set the field. Offset of the field name that opened it, and its
 * path ending with the missing field.
 */
function locateMissingRequired(
  type: protobuf.Type,
  text: string,
  message: string,
): { offset: number; key: string } | undefined {
  const m = /^\.?([\w.]+)\.(\w+): missing required field$/.exec(message);
  if (!m) return undefined;
  const [, typeName, fieldName] = m as unknown as [string, string, string];
  let found: { offset: number; key: string } | undefined;
  scan(text, text.length, type, (frame, path) => {
    if (found || !frame.type || frame.type.fullName.replace(/^\./, '') !== typeName) return;
    const field = frame.type.fields[fieldName!];
    const names = field ? [field.name, textName(field.name)] : [fieldName!];
    if (names.some((n) => frame.seen.has(n))) return;
    found = {
      offset: frame.offset,
      key: [...framePath([...path, frame]), textName(fieldName!)].join(' > '),
    };
  });
  return found;
}

/** The .proto spelling of a camelCased field name (layerName -> layer_name). */
function textName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** Parses `text` as a `type` message; `file` names it in errors. */
export function parseText(type: protobuf.Type, text: string, file = '<text>'): protobuf.Message {
  try {
    return textformat.fromText(type, text);
  } catch (e) {
    const failure = tryParse(type, text) ?? { message: e instanceof Error ? e.message : String(e) };
    let message = failure.message;
    let offset: number | undefined;
    let key: string | undefined;
    const required = locateMissingRequired(type, text, failure.message);
    if (required) {
      offset = required.offset;
      key = required.key;
    } else {
      offset = locate(type, text, failure);
      if (offset === text.length) {
        // an unclosed message: the path is the message left open
        key = framePath(scan(text, offset, type).stack).join(' > ') || undefined;
        message = `${message} at end of input`;
      } else if (offset !== undefined) {
        key = fieldPathAt(text, offset + 1, type);
      }
    }
    let place: { line?: number; column?: number } = {};
    if (offset !== undefined) place = lineColumn(text, offset);
    else if (failure.line !== undefined) place = { line: failure.line };
    const where = [file, place.line, place.column].filter((x) => x !== undefined).join(':');
    const what = key ? `${key}: ${message}` : message;
    throw new TextFormatError(`${where}: ${what} (${type.name} text format)`, {
      file,
      ...place,
      ...(key ? { key } : {}),
    });
  }
}

/** Reads and parses a text-format file. */
export function parseTextFile(type: protobuf.Type, file: string): protobuf.Message {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TextFormatError(`${file}: cannot read: ${(e as Error).message}`, { file });
  }
  return parseText(type, text, file);
}

/** The shortest decimal that reads back as the same float32 (0.1, not 0.10000000149011612). */
export function shortestFloat32(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x; // keeps -0
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

/** A copy of `message` with every `float` field at its shortest float32 decimal. */
function roundFloats(type: protobuf.Type, message: Plain): Plain {
  const out: Plain = { ...message };
  for (const field of type.fieldsArray) {
    const v = out[field.name];
    if (v === undefined || v === null) continue;
    field.resolve();
    if (field.type === 'float') {
      out[field.name] =
        Array.isArray(v) || ArrayBuffer.isView(v)
          ? Array.from(v as ArrayLike<number>, shortestFloat32)
          : shortestFloat32(v as number);
    } else if (field.resolvedType && 'fieldsArray' in field.resolvedType) {
      const sub = field.resolvedType as protobuf.Type;
      out[field.name] = Array.isArray(v)
        ? v.map((m) => roundFloats(sub, m as Plain))
        : roundFloats(sub, v as Plain);
    }
  }
  return out;
}

/**
 * Prints a message (or a plain object in the message's shape) as text format. float fields print
 * as the shortest decimal of their float32 value, so a file reads back to the same numbers.
 */
export function printText(type: protobuf.Type, message: protobuf.Message | Plain): string {
  const text = textformat.toText(type, roundFloats(type, message as Plain));
  return text.endsWith('\n') || text === '' ? text : `${text}\n`;
}

/** Writes a message as a text-format file, atomically (temp file, then rename). */
export function writeTextFile(
  type: protobuf.Type,
  message: protobuf.Message | Plain,
  file: string,
): void {
  writeFileAtomic(file, printText(type, message));
}

/** The message as a plain object: camelCase fields, enums as names, 64-bit ints as numbers. */
export function toPlain(type: protobuf.Type, message: protobuf.Message): Plain {
  return type.toObject(message, { enums: String, longs: Number, bytes: Buffer }) as Plain;
}

/** A message from a plain object (enum names or numbers, camelCase or .proto field names). */
export function fromPlain(type: protobuf.Type, plain: Plain): protobuf.Message {
  return type.fromObject(plain);
}
