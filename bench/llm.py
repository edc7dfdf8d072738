"""Chinese -> English subtitle translation with the local model: chrF and seconds per line.

Twenty short subtitle lines of one conversation, each with a reference translation
written for this bench. Strategies:

- ``context``: one line per request with the previous and next line as context (default);
- ``line``: one line per request, no context (``context_lines: 0``);
- ``batch``: all lines numbered in one request (what a small model cannot do: shown for
  the record; lines it loses count as empty).

Every strategy's output is also checked as the node checks it: lost lines, lines with
Chinese left in them. chrF is character n-grams 1..6, beta 2 (sacreBLEU's default), corpus
level.

    python bench/llm.py [--threads 2] [--strategies context line batch]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.llm import LLMService, TranslateParams  # noqa: E402
from yivideo.nodes import NodeContext  # noqa: E402
from yivideo.settings import Settings  # noqa: E402
from yivideo.subtitles.answers import scripts_in  # noqa: E402
from yivideo.types import Segment, Transcript  # noqa: E402

PAIRS = [
    ("你好，好久不见。", "Hello, long time no see."),
    ("你最近怎么样？", "How have you been lately?"),
    ("我很好，谢谢。", "I'm fine, thank you."),
    ("今天天气很好。", "The weather is nice today."),
    ("我们去公园散步吧。", "Let's go for a walk in the park."),
    ("好主意，我去拿外套。", "Good idea, I'll get my coat."),
    ("公园里有很多人。", "There are a lot of people in the park."),
    ("孩子们在放风筝。", "The children are flying kites."),
    ("你看，那只狗跑得真快。", "Look, that dog runs really fast."),
    ("我小时候也养过一只狗。", "I also had a dog when I was a child."),
    ("它叫什么名字？", "What was its name?"),
    ("它叫小白。", "Its name was Xiaobai."),
    ("我们坐下休息一会儿吧。", "Let's sit down and rest for a while."),
    ("你想喝点什么吗？", "Would you like something to drink?"),
    ("我想喝一杯咖啡。", "I'd like a cup of coffee."),
    ("这家咖啡店很有名。", "This coffee shop is very famous."),
    ("明天你有空吗？", "Are you free tomorrow?"),
    ("我明天要上班。", "I have to work tomorrow."),
    ("那我们周末再见吧。", "Then let's meet again on the weekend."),
    ("好的，再见！", "Okay, goodbye!"),
]


def _ngrams(text: str, n: int) -> Counter:
    text = re.sub(r"\s+", "", text)  # sacreBLEU's chrF ignores whitespace
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(hypotheses: list[str], references: list[str], order: int = 6, beta: float = 2.0
         ) -> float:
    """Corpus chrF (0..100): n-gram statistics summed over lines, averaged over n."""
    precisions, recalls = [], []
    for n in range(1, order + 1):
        match = hyp = ref = 0
        for h, r in zip(hypotheses, references, strict=True):
            hc, rc = _ngrams(h, n), _ngrams(r, n)
            match += sum((hc & rc).values())
            hyp += sum(hc.values())
            ref += sum(rc.values())
        if hyp and ref:
            precisions.append(match / hyp)
            recalls.append(match / ref)
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    if p + r == 0:
        return 0.0
    return 100 * (1 + beta**2) * p * r / (beta**2 * p + r)


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
    print("| strategy | chrF | s/line | lost lines | Chinese left | flagged (source kept) |")
    print("|---|---|---|---|---|---|")
    for strategy in args.strategies:
        t0 = time.monotonic()
        flagged = 0
        if strategy == "batch":
            hyps = run_batch(service, args.threads)
        else:
            hyps, flagged = run_node(service, args.threads, 1 if strategy == "context" else 0)
        per_line = (time.monotonic() - t0) / len(PAIRS)
        lost = sum(1 for h in hyps if not h.strip())
        chinese = sum(1 for h in hyps if "han" in scripts_in(h))
        print(f"| {strategy} | {chrf(hyps, refs):.1f} | {per_line:.2f} | {lost} | {chinese} "
              f"| {flagged} |", flush=True)
        if strategy == "context":
            for (zh, en), h in zip(PAIRS, hyps, strict=True):
                print(f"    {zh} -> {h}   [ref: {en}]", file=sys.stderr)


if __name__ == "__main__":
    main()
