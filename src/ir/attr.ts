import { Tensor } from './tensor';

/**
 * Node attributes, typed like ONNX's AttributeProto. `opaque` keeps attributes the IR does not
 * interpret (subgraphs, type protos) as their decoded protobuf object so export writes them back.
 */
export type Attr =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: Tensor }
  | { kind: 'floats'; value: number[] }
  | { kind: 'ints'; value: number[] }
  | { kind: 'strings'; value: string[] }
  | { kind: 'opaque'; value: unknown };

export type AttrValue = number | string | Tensor | number[] | string[];

export const attr = {
  float: (value: number): Attr => ({ kind: 'float', value }),
  int: (value: number): Attr => ({ kind: 'int', value }),
  string: (value: string): Attr => ({ kind: 'string', value }),
  tensor: (value: Tensor): Attr => ({ kind: 'tensor', value }),
  floats: (value: number[]): Attr => ({ kind: 'floats', value }),
  ints: (value: number[]): Attr => ({ kind: 'ints', value }),
  strings: (value: string[]): Attr => ({ kind: 'strings', value }),
};
