import { Graph, Model } from './graph';
import { Node } from './node';
import type { Value } from './value';

/**
 * Structural deep copy of a model. Tensors are shared: the IR treats tensor data as immutable
 * (passes replace a constant rather than writing into it).
 */
export function cloneModel(model: Model): Model {
  const copy = new Model(cloneGraph(model.graph));
  copy.irVersion = model.irVersion;
  copy.opsetImports = model.opsetImports.map((o) => ({ ...o }));
  copy.producerName = model.producerName;
  copy.producerVersion = model.producerVersion;
  copy.domain = model.domain;
  copy.modelVersion = model.modelVersion;
  copy.docString = model.docString;
  copy.metadata = { ...model.metadata };
  copy.functions = [...model.functions];
  copy.source = model.source ? { ...model.source } : null;
  return copy;
}

export function cloneGraph(g: Graph): Graph {
  const out = new Graph(g.name);
  out.docString = g.docString;
  const map = new Map<Value, Value>();
  const get = (v: Value | null): Value | null => {
    if (!v) return null;
    const m = map.get(v);
    if (!m) throw new Error(`clone: value '${v.name}' used before it is defined`);
    return m;
  };
  for (const v of g.inputs) map.set(v, out.addInput(v.name, copyType(v)));
  for (const [name, v] of g.initializers) {
    const c = out.addInitializer(name, v.constant!);
    c.type = copyType(v);
    map.set(v, c);
  }
  for (const n of g.nodes) {
    const outputs = n.outputs.map((o) => {
      const c = out.newValue(o.name, copyType(o));
      c.name = o.name;
      map.set(o, c);
      return c;
    });
    const node = new Node({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      inputs: [],
      outputs,
      attrs: Object.fromEntries(n.attrs),
      meta: structuredCloneMeta(n.meta),
    });
    n.inputs.forEach((v, i) => node.replaceInput(i, v && (map.get(v) ?? get(v))));
    out.addNode(node);
  }
  for (const v of g.outputs) out.outputs.push(get(v)!);
  for (const name of g.declaredValueInfo) out.declaredValueInfo.add(name);
  return out;
}

function copyType(v: Value): Value['type'] {
  return v.type
    ? { dtype: v.type.dtype, shape: v.type.shape ? [...v.type.shape] : undefined }
    : undefined;
}

function structuredCloneMeta(meta: Record<string, unknown>): Record<string, unknown> {
  // Meta holds plain data (decoded Caffe layer objects, doc strings); a JSON-safe deep copy is
  // enough and keeps passes on the clone from touching the original.
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) out[k] = v === undefined ? v : deepCopy(v);
  return out;
}

function deepCopy(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) return v;
  if (Array.isArray(v)) return v.map(deepCopy);
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) o[k] = deepCopy(x);
  return o;
}
