/**
 * The error types the SDK throws. Every error names the place at fault: the file, the line and
 * column for text formats, the layer, or the config key.
 */
export interface ErrorPlace {
  file?: string;
  line?: number;
  column?: number;
  layer?: string;
  key?: string;
}

export class AmctError extends Error {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  readonly layer?: string;
  readonly key?: string;

  constructor(message: string, place: ErrorPlace = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    Object.assign(this, place);
  }
}

/** A model or weights file that cannot be read: truncated, garbage, wrong format. */
export class ModelFormatError extends AmctError {}

/** A layer or operator the adapters or the runtime do not support. */
export class UnsupportedLayerError extends AmctError {}

/** A forward() feed with an unknown name, a wrong shape or a wrong type. */
export class FeedError extends AmctError {}

/** A configuration JSON or .cfg that breaks AMCT's rules. */
export class ConfigError extends AmctError {}

/** A scale/offset record file that is missing entries or holds illegal values. */
export class RecordError extends AmctError {}

/** Numerical trouble during calibration or quantization (degenerate data, overflow). */
export class QuantizationError extends AmctError {}

/** Formats `file:line:col` for messages. */
export function placeText(place: ErrorPlace): string {
  if (!place.file) return '';
  let s = place.file;
  if (place.line !== undefined) s += `:${place.line}`;
  if (place.column !== undefined) s += `:${place.column}`;
  return s;
}

/** Protobuf text (prototxt, .cfg, record) that does not parse against its schema. */
export class TextFormatError extends AmctError {}
