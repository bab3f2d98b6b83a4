/** The simplified configuration (.cfg) as parsed: what it sets, nothing resolved. */

export interface CfgArq {
  algo: 'arq_quantize';
  channelWise?: boolean;
  quantBits?: number;
}
export interface CfgNuq {
  algo: 'nuq_quantize';
  numSteps: number;
  numOfIteration: number;
}
export type CfgWeight = CfgArq | CfgNuq;

export interface CfgIfmr {
  algo: 'ifmr';
  numBits: number;
  maxPercentile: number;
  minPercentile: number;
  searchRange: [number, number];
  searchStep: number;
  asymmetric?: boolean;
}
export interface CfgHfmg {
  algo: 'hfmg';
  numBits: number;
  numOfBins: number;
  asymmetric?: boolean;
}
export type CfgAct = CfgIfmr | CfgHfmg;

/** One CalibrationConfig: what it sets, nothing filled in. */
export interface CalibrationSpec {
  weight?: CfgWeight;
  act?: CfgAct;
  /** dmq_balancer's migration_strength. */
  dmq?: number;
}

export interface SimplifiedConfig {
  file: string;
  batchNum?: number;
  activationOffset?: boolean;
  jointQuant?: boolean;
  doFusion?: boolean;
  version?: number;
  skipLayers: string[];
  skipLayerTypes: string[];
  skipFusionLayers: string[];
  common?: CalibrationSpec;
  overrideTypes: Map<string, CalibrationSpec>;
  overrideLayers: Map<string, CalibrationSpec>;
  nuq?: { mappingFile?: string; numSteps: number; numOfIteration: number };
}
