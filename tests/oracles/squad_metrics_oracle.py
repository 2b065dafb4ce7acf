"""Runs inside an oracle virtualenv (transformers 4.x): never imports longdoc.

    python squad_metrics_oracle.py < CASES.json > RESULTS.json

CASES.json: a list of {"questions": [{"id", "answers": [text, ...]}], "predictions": {id: text},
"no_answer_probabilities": {id: p} or null, "threshold": float}. Each result is what
transformers' `squad_evaluate` (the SQuAD v2.0 evaluation logic) returns for the case, plus the
per-question exact and F1 scores of `get_raw_scores`.
"""

import json
import sys
from types import SimpleNamespace

from transformers.data.metrics.squad_metrics import get_raw_scores, squad_evaluate


def main() -> None:
    results = []
    for case in json.load(sys.stdin):
        # squad_evaluate reads only qas_id and answers[i]["text"] of a SquadExample
        examples = [SimpleNamespace(qas_id=q["id"], answers=[{"text": t} for t in q["answers"]])
                    for q in case["questions"]]
        evaluation = squad_evaluate(examples, case["predictions"], case["no_answer_probabilities"], case["threshold"])
        exact, f1 = get_raw_scores(examples, case["predictions"])
        results.append({"evaluation": dict(evaluation), "exact": exact, "f1": f1})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
