"""CValues multi-choice evaluation (X-PLUG/CValues, Apache-2.0), offline parts: pairs -> items -> scores.

    valuecsv-ray cvalues items demo --out cvalues_items.jsonl   # then collect answers to the items
    valuecsv-ray cvalues score --items cvalues_items.jsonl --responses eval/collect/responses --out eval/cv

pairs (load pairs files) -> items (both orders, our template) -> parse (upstream's answer rules)
-> metrics (acc, acc*, consistency, position bias) -> manual (Need_Check rows to an xlsx and back).
No torch, no Ray.
"""
