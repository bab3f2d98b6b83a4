export { amctType, caffeType } from './schemas';
export {
  fieldPathAt,
  fromPlain,
  parseText,
  parseTextFile,
  printText,
  shortestFloat32,
  toPlain,
  writeTextFile,
  type Plain,
} from './text-format';
