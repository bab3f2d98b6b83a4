/**
 * create_quant_retrain_model for Caffe: the prototxt is edited as a NetParameter (every phase's
 * layers kept, unlike an IR round trip, which sees one phase): before each enabled layer a
 * RetrainQuant layer quantizes its bottom (ULQ) and names the weight quantization (ARQ retrain);
 * after each enabled weighted layer a TEST-phase SearchN layer marks where the shift N is
 * searched. The caffemodel is the original one (the new layers get their clip blobs from IFMR
 * or from the config once training starts). The record file is created empty.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelFormatError } from '../errors';
import { upgradeV1Layer } from '../frontends/caffe/import';
import { parseNetPrototxt } from '../frontends/caffe/proto';
import type { LayerPlain, NetParameterPlain, NetStateRulePlain } from '../frontends/caffe/types';
import { loadModel } from '../frontends/load';
import { layerName } from '../config/quantizable';
import type { Node } from '../ir';
import { logger } from '../log/logger';
import { caffeType, fromPlain, printText } from '../proto';
import { RecordFile } from '../record/record-file';
import { writeFileAtomic } from '../util/fs';
import { readRetrainConfig, retrainLayers, type RetrainLayerConfig } from './config';

export interface ModifiedLayer {
  layer: string;
  quantLayer: string;
  searchLayer: string | null;
  fixedMin: boolean;
}

/** The value a layer reads from outside (through its own Flatten, for InnerProduct). */
function layerInputProducer(node: Node): Node | null {
  let v = node.input(0);
  while (v?.producer && layerName(v.producer) === layerName(node)) v = v.producer.input(0);
  return v?.producer ?? null;
}

/** Rules for a TEST-only copy of a layer's include rules. */
function testRules(include: NetStateRulePlain[] | undefined): NetStateRulePlain[] {
  if (!include || include.length === 0) return [{ phase: 'TEST' }];
  return include
    .filter((r) => r.phase === undefined || r.phase === null || r.phase === 'TEST')
    .map((r) => ({ ...r, phase: 'TEST' }));
}

export function createRetrainModel(
  modelFile: string,
  weightsFile: string,
  configFile: string,
  modifiedModelFile: string,
  modifiedWeightsFile: string,
  recordFile: string,
): ModifiedLayer[] {
  for (const target of [modifiedModelFile, modifiedWeightsFile]) {
    for (const src of [modelFile, weightsFile]) {
      if (path.resolve(target) === path.resolve(src))
        throw new ModelFormatError(`${target}: will not overwrite the model it is made from`, {
          file: target,
        });
    }
  }
  const model = loadModel(modelFile, weightsFile, { phase: 'TRAIN' });
  const config = readRetrainConfig(configFile, model.graph);
  const infos = new Map(retrainLayers(model.graph).map((i) => [i.name, i]));
  const net: NetParameterPlain = parseNetPrototxt(modelFile);
  const layers: LayerPlain[] =
    net.layers && net.layers.length > 0 ? net.layers.map(upgradeV1Layer) : [...(net.layer ?? [])];
  const record = path.resolve(recordFile);
  const out: LayerPlain[] = [];
  const modified: ModifiedLayer[] = [];
  const names = new Set(layers.map((l) => l.name ?? ''));
  const unique = (base: string): string => {
    let n = base;
    for (let i = 1; names.has(n); i++) n = `${base}_${i}`;
    names.add(n);
    return n;
  };
  for (const layer of layers) {
    const name = layer.name ?? '';
    const c: RetrainLayerConfig | undefined = config.layers.get(name);
    const info = infos.get(name);
    if (!c?.enable || !info) {
      out.push(layer);
      continue;
    }
    const bottom = layer.bottom?.[0];
    if (!bottom)
      throw new ModelFormatError(`${modelFile}: layer '${name}' has no bottom`, {
        file: modelFile,
        layer: name,
      });
    const producer = layerInputProducer(info.node);
    const fixedMin = c.data.fixedMin ?? producer?.opType === 'Relu';
    const quantName = unique(`${name}.retrain_quant`);
    const rules = {
      ...(layer.include ? { include: layer.include } : {}),
      ...(layer.exclude ? { exclude: layer.exclude } : {}),
    };
    out.push({
      name: quantName,
      type: 'RetrainQuant',
      bottom: [bottom],
      top: [quantName],
      ...rules,
      retrainQuantParam: {
        objectLayer: name,
        actAlgo: 'ulq_quantize',
        ...(c.data.clipMax !== undefined
          ? { clipMax: c.data.clipMax, clipMin: c.data.clipMin }
          : {}),
        fixedMin,
        numBits: c.data.numBits,
        wtsAlgo: c.weight ? 'arq_retrain' : '',
        channelWise: c.weight?.channelWise ?? false,
        wtsNumBits: c.weight?.numBits ?? 8,
        recordFilePath: record,
        batchNum: config.batchNum,
      },
    });
    out.push({ ...layer, bottom: [quantName, ...(layer.bottom ?? []).slice(1)] });
    let searchLayer: string | null = null;
    const top = layer.top?.[0];
    if (c.weight && top) {
      searchLayer = unique(`${name}.search_n`);
      const include = testRules(layer.include);
      if (include.length > 0) {
        out.push({
          name: searchLayer,
          type: 'SearchN',
          bottom: [top],
          top: [top],
          include,
          ...(layer.exclude ? { exclude: layer.exclude } : {}),
          searchNParam: { objectLayer: [name], recordFilePath: record, batchNum: config.batchNum },
        });
      }
    }
    modified.push({ layer: name, quantLayer: quantName, searchLayer, fixedMin });
    logger.info(
      `${name}: retrain quantization of its input (ULQ INT${c.data.numBits}${fixedMin ? ', clip_min fixed at 0' : ''})` +
        (c.weight
          ? ` and weights (ARQ INT${c.weight.numBits}${c.weight.channelWise ? ', channel-wise' : ''})`
          : ''),
    );
  }
  for (const [name, c] of config.layers) {
    if (!c.enable) logger.info(`${name}: retrain quantization disabled in ${configFile}`);
  }
  const { layers: _v1, ...head } = net;
  void _v1;
  const type = caffeType('NetParameter');
  const text = printText(type, fromPlain(type, { ...head, layer: out }));
  writeFileAtomic(modifiedWeightsFile, fs.readFileSync(weightsFile));
  writeFileAtomic(modifiedModelFile, text);
  RecordFile.clear(recordFile);
  return modified;
}
