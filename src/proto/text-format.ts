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

/**
 * Where in `text` the parse fails with `failure`: the shortest prefix that fails the same way
 * ends inside the offending token. Errors found only after the whole text is read (missing
 * required fields) have no place. Binary search, so a failing file costs O(n log n) once.
 */
function locate(type: protobuf.Type, text: string, failure: Failure): number | undefined {
  const same = (len: number): boolean => {
    const f = tryParse(type, text.slice(0, len));
    return f !== null && f.message === failure.message && (failure.line === undefined || f.line === failure.line);
  };
  if (!same(text.length)) return undefined;
  const starts = lineStarts(text);
  let lo = failure.line !== undefined ? (starts[failure.line - 1] ?? 0) : 0;
  let hi = text.length;
  // A prefix ending before the line cannot fail on it; search within [lo, hi].
  if (same(lo)) return undefined; // the failure needs no text of its own (end of input)
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (same(mid)) hi = mid;
    else lo = mid;
  }
  return tokenStart(text, hi - 1);
}

/** Start of the token holding offset `i` (a word, number, or quoted string). */
function tokenStart(text: string, i: number): number {
  let s = i;
  while (s > 0 && /[\w.+\-]/.test(text.charAt(s - 1)) && /[\w.+\-]/.test(text.charAt(s))) s--;
  // inside a string: back to its opening quote on the same line
  const lineStart = text.lastIndexOf('\n', i) + 1;
  const before = text.slice(lineStart, i + 1);
  for (const q of ['"', "'"]) {
    const count = before.split(q).length - 1;
    if (count % 2 === 1) return lineStart + before.lastIndexOf(q);
  }
  return s;
}

/**
 * The field path at `offset`: the message fields opened and not yet closed, with the index of
 * repeated ones and the `name:` they hold when there is one, ending with the field being read.
 */
export function fieldPathAt(text: string, offset: number): string {
  interface Frame {
    label: string;
    counts: Map<string, number>;
    name?: string;
  }
  const stack: Frame[] = [{ label: '', counts: new Map() }];
  let lastWord = '';
  let inValue = false; // after ':' the next token is the field's value, not a field name
  const tokens = /#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[A-Za-z_][\w.]*|[{}<>:\[\],;]|[^\s]/g;
  tokens.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = tokens.exec(text)) !== null && m.index < offset) {
    const t = m[0];
    const top = stack[stack.length - 1]!;
    if (t.startsWith('#')) continue;
    const valueToken: boolean = inValue;
    inValue = t === ':' || (valueToken && (t === '-' || t === '[' || t === ','));
    if (t === '{' || t === '<') {
      const n = top.counts.get(lastWord) ?? 0;
      top.counts.set(lastWord, n + 1);
      stack.push({ label: `${lastWord}[${n}]`, counts: new Map() });
      lastWord = '';
    } else if (t === '}' || t === '>') {
      if (stack.length > 1) stack.pop();
      lastWord = '';
    } else if (/^[A-Za-z_]/.test(t) && !valueToken) {
      lastWord = t;
    } else if (t.startsWith('"') || t.startsWith("'")) {
      if (lastWord === 'name' && top.name === undefined) top.name = t;
    }
  }
  const parts = stack.slice(1).map((f) => (f.name ? `${f.label} ${f.name}` : f.label));
  if (lastWord) parts.push(lastWord);
  return parts.join(' > ');
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
export function parseText(
  type: protobuf.Type,
  text: string,
  file = '<text>',
): protobuf.Message {
  try {
    return textformat.fromText(type, text);
  } catch (e) {
    const failure = tryParse(type, text) ?? { message: e instanceof Error ? e.message : String(e) };
    const offset = locate(type, text, failure);
    let place: { line?: number; column?: number } = {};
    let key: string | undefined;
    if (offset !== undefined) {
      place = lineColumn(text, offset);
      key = fieldPathAt(text, offset + 1);
    } else if (failure.line !== undefined) {
      place = { line: failure.line };
    }
    const where = [file, place.line, place.column].filter((x) => x !== undefined).join(':');
    const what = key ? `${key}: ${failure.message}` : failure.message;
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
  if (!Number.isFinite(x)) return x;
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
      out[field.name] = Array.isArray(v) || ArrayBuffer.isView(v)
        ? Array.from(v as ArrayLike<number>, shortestFloat32)
        : shortestFloat32(v as number);
    } else if (field.resolvedType && 'fieldsArray' in field.resolvedType) {
      const sub = field.resolvedType as protobuf.Type;
      out[field.name] = Array.isArray(v) ? v.map((m) => roundFloats(sub, m as Plain)) : roundFloats(sub, v as Plain);
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
export function writeTextFile(type: protobuf.Type, message: protobuf.Message | Plain, file: string): void {
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
