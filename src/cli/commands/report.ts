/**
 * `amct report`: the self-contained HTML report from a `{p}_quant.json`, with the model summary,
 * activation histograms and skipped layers when `{p}_analysis.json` sits beside it.
 */
import * as fs from 'fs';
import { readAnalysis } from '../../report/analysis';
import { renderReportHtml } from '../../report/html';
import { readQuantJson } from '../../report/quant-json';
import { writeFileAtomic } from '../../util/fs';
import { existing, str } from '../args';
import type { Command } from '../context';
import { UsageError } from '../errors';

const USAGE = `amct report: an HTML quantization report from quant.json

Usage:
  amct report results/NAME_quant.json [-o report.html] [options]

Options:
  -o, --output FILE     where to write (default: results/NAME_report.html)
  --analysis FILE       activation histograms, model summary and skipped layers
                        (default: results/NAME_analysis.json when it exists; amct quantize writes it)
  --layer NAME          the layer whose histogram shows first (default: the lowest SQNR)
  --title TEXT          page heading
  --json  -h/--help

The page is one file (inline SVG and CSS, no network): open it in any browser.`;

function defaultOutput(quantJson: string): string {
  return quantJson.endsWith('_quant.json')
    ? quantJson.replace(/_quant\.json$/, '_report.html')
    : quantJson.replace(/(\.json)?$/, '.html');
}

export const report: Command = {
  name: 'report',
  summary: 'self-contained HTML report (per-layer error bars, histograms, skipped layers)',
  usage: USAGE,
  options: {
    output: { type: 'string', short: 'o' },
    analysis: { type: 'string' },
    layer: { type: 'string' },
    title: { type: 'string' },
  },
  positionals: 1,
  async run(v, pos, ctx) {
    const file = pos[0];
    if (!file)
      throw new UsageError('report needs a quant.json: amct report results/NAME_quant.json');
    existing(file, 'quant.json');
    const explicit = str(v, 'analysis');
    if (explicit) existing(explicit, 'analysis file');
    const sibling = file.replace(/_quant\.json$/, '_analysis.json');
    const analysisFile =
      explicit ?? (sibling !== file && fs.existsSync(sibling) ? sibling : undefined);
    const out = str(v, 'output') ?? defaultOutput(file);
    if (out === file)
      throw new UsageError(`--output ${out} would overwrite the quant.json it reads`);
    const quant = readQuantJson(file);
    const analysis = analysisFile ? readAnalysis(analysisFile) : null;
    const layer = str(v, 'layer');
    if (layer !== undefined) {
      const known = Object.keys(analysis?.activations ?? {});
      if (!known.includes(layer)) {
        throw new UsageError(
          `--layer ${layer}: no activation histogram for it (${known.length ? `layers: ${known.join(', ')}` : 'no analysis file'})`,
        );
      }
    }
    const title = str(v, 'title');
    writeFileAtomic(
      out,
      renderReportHtml({
        quant,
        analysis,
        ...(layer ? { layer } : {}),
        ...(title ? { title } : {}),
      }),
    );
    ctx.say(
      `written: ${out}${analysisFile ? ` (with ${analysisFile})` : ' (no analysis file: per-layer errors only)'}`,
    );
    return { quant_json: file, ...(analysisFile ? { analysis: analysisFile } : {}), files: [out] };
  },
};
