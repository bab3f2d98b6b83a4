/** amct.report: model summaries, activation histograms and the self-contained HTML report. */
export {
  summarizeModel,
  nodeMacs,
  type ModelSummary,
  type NodeSummary,
  type TensorSummary,
} from './model-summary';
export { activationHistograms, clipRange, type ActivationHistogram } from './activations';
export {
  analyzeFiles,
  analyzeQuantization,
  analysisFileFor,
  layerStatuses,
  readAnalysis,
  writeAnalysis,
  type AnalysisOptions,
  type CalibrationInfo,
  type QuantRunFiles,
  type LayerStatus,
  type QuantAnalysis,
} from './analysis';
export { readQuantJson, type QuantJson, type QuantLayerInfo, type OutputError } from './quant-json';
export { renderReportHtml, type ReportInput } from './html';
export { compareTensors, type LayerError } from './layer-error';
