"""Chinese -> English subtitle translation with the local model: chrF and lines per second.

The twenty Chinese lines the test videos burn in (``testmedia.SENTENCES_ZH``), each with
its English reference (``SENTENCES_ZH_EN``). Strategies:

- ``context``: one line per request with the previous and next line as context (default);
- ``line``: one line per request, no context (``context_lines: 0``);
- ``batch``: all lines numbered in one request (what a small model cannot do: shown for
  the record; lines it loses count as empty).

Every strategy's output is also checked as the node checks it: lost lines, lines with
Chinese left in them. chrF is sacreBLEU's (character n-grams 1..6, beta 2), corpus level;
the ratios are against ``line``, measured in the same run.

    python bench/llm.py [--threads 2] [--strategies context line batch]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import sacrebleu

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.llm import LLMService, TranslateParams  # noqa: E402
from yivideo.nodes import NodeContext  # noqa: E402
from yivideo.settings import Settings  # noqa: E402
from yivideo.subtitles.answers import scripts_in  # noqa: E402
from yivideo.testmedia import SENTENCES_ZH, SENTENCES_ZH_EN  # noqa: E402
from yivideo.types import Segment, Transcript  # noqa: E402

PAIRS = list(zip(SENTENCES_ZH, SENTENCES_ZH_EN, strict=True))


def chrf(hypotheses: list[str], references: list[str]) -> float:
    """Corpus chrF (sacreBLEU: character n-grams 1..6, beta 2)."""
    return sacrebleu.corpus_chrf(hypotheses, [references]).score


def _transcript() -> Transcript:
    return Transcript("zh", 1.0, 3.0 * len(PAIRS),
                      [Segment(3.0 * i, 3.0 * i + 2.5, zh) for i, (zh, _) in enumerate(PAIRS)])


def run_node(service: LLMService, threads: int, context_lines: int) -> tuple[list[str], int]:
    params = TranslateParams(target_language="en", threads=threads,
                             context_lines=context_lines)
    out = service.translate(NodeContext(stage="bench"), params, _transcript())["transcript"]
    return [s.text for s in out.segments], sum(1 for s in out.segments if s.flags)


def run_batch(service: LLMService, threads: int) -> list[str]:
    model = service.local_model(TranslateParams(threads=threads))
    numbered = "\n".join(f"{i + 1}. {zh}" for i, (zh, _) in enumerate(PAIRS))
    out = model.create_chat_completion([
        {"role": "system", "content": "You translate subtitles into English. Reply with the "
                                      "numbered English translations only, one per line."},
        {"role": "user", "content": numbered}], temperature=0, max_tokens=1024)
    found = {}
    for line in out["choices"][0]["message"]["content"].splitlines():
        m = re.match(r"\s*(\d+)[.)、:]\s*(.*)", line)
        if m:
            found.setdefault(int(m.group(1)), m.group(2).strip())
    return [found.get(i + 1, "") for i in range(len(PAIRS))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strategies", nargs="+", default=["context", "line", "batch"])
    args = ap.parse_args()
    service = LLMService(Settings())
    service.local_model(TranslateParams(threads=args.threads))  # load outside the timing
    refs = [en for _, en in PAIRS]
    print(f"{len(PAIRS)} zh->en lines, qwen2.5-coder-0.5b GGUF, llama.cpp, "
          f"{args.threads} threads\n")
    print("| strategy | chrF | chrF − line | lines/s | × line | lost lines | Chinese left "
          "| flagged (source kept) |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    order = ["line", *[s for s in args.strategies if s != "line"]]  # the baseline first
    for strategy in order:
        t0 = time.monotonic()
        flagged = 0
        if strategy == "batch":
            hyps = run_batch(service, args.threads)
        else:
            hyps, flagged = run_node(service, args.threads, 1 if strategy == "context" else 0)
        rate = len(PAIRS) / (time.monotonic() - t0)
        score = chrf(hyps, refs)
        rows[strategy] = (score, rate)
        base_score, base_rate = rows["line"]
        lost = sum(1 for h in hyps if not h.strip())
        chinese = sum(1 for h in hyps if "han" in scripts_in(h))
        print(f"| {strategy} | {score:.1f} | {score - base_score:+.1f} | {rate:.2f} "
              f"| {rate / base_rate:.2f} | {lost} | {chinese} | {flagged} |", flush=True)
        if strategy == "context":
            for (zh, en), h in zip(PAIRS, hyps, strict=True):
                print(f"    {zh} -> {h}   [ref: {en}]", file=sys.stderr)


if __name__ == "__main__":
    main()
