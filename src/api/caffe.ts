/** amct.caffe: pycaffe-like pieces amct_caffe users drive themselves (the retrain Solver). */
export { Solver, type Feeds, type SolverData, type SolveResult, type TestResult } from './solver';
