#!/usr/bin/env python
"""Compare two benchmark ``results.json`` files metric by metric (e.g. before / after a refactor).

For every row (domain, condition, method) present in both files and every metric present in
both rows, the aggregated ``mean``, ``lo``, ``hi`` and ``n`` are compared (exactly by default, or
within ``--rtol``); the sanity-check SSIM means likewise. Prints a summary and a line per
difference, writes the same as JSON with ``--out``; exits 1 when something differs.

Examples::

    python benchmarks/compare_results.py before/results.json after/results.json
    python benchmarks/compare_results.py a.json b.json --rtol 1e-6 --out comparison.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List


def _rows(res: Dict[str, Any]) -> Dict[tuple, Dict[str, Any]]:
    return {(r["domain"], r["condition"], r["method"]): r for r in res["rows"]}


def _same(a: Any, b: Any, rtol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b if rtol == 0 else abs(a - b) <= rtol * max(1.0, abs(a), abs(b))
    return a == b


def compare(before: Dict[str, Any], after: Dict[str, Any], rtol: float = 0.0) -> Dict[str, Any]:
    """Differences between two results dicts (see the module documentation)."""
    ra, rb = _rows(before), _rows(after)
    diffs: List[Dict[str, Any]] = []
    checked = 0
    only_before = sorted(map(list, set(ra) - set(rb)))
    only_after = sorted(map(list, set(rb) - set(ra)))
    for key in sorted(set(ra) & set(rb)):
        ma, mb = ra[key]["metrics"], rb[key]["metrics"]
        for metric in sorted(set(ma) & set(mb)):
            for stat in ("mean", "lo", "hi", "n"):
                checked += 1
                va, vb = ma[metric].get(stat), mb[metric].get(stat)
                if not _same(va, vb, rtol):
                    diffs.append({"row": list(key), "metric": metric, "stat": stat, "before": va, "after": vb})
    sa, sb = before.get("sanity") or {}, after.get("sanity") or {}
    for name in sorted(set(sa.get("methods", {})) & set(sb.get("methods", {}))):
        for i, (va, vb) in enumerate(zip(sa["methods"][name]["mean"], sb["methods"][name]["mean"])):
            checked += 1
            if not _same(va, vb, rtol):
                diffs.append({"row": ["sanity", sa["stages"][i], name], "metric": "SSIM", "stat": "mean",
                              "before": va, "after": vb})
    return {"rtol": rtol, "rows_compared": len(set(ra) & set(rb)), "values_compared": checked,
            "differences": diffs, "rows_only_before": only_before, "rows_only_after": only_after,
            "identical": not diffs and not only_before}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: exact)")
    p.add_argument("--out", default=None, help="write the comparison as JSON")
    args = p.parse_args(argv)
    try:
        before, after = (json.loads(Path(f).read_text()) for f in (args.before, args.after))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"compare_results: error: {exc}", file=sys.stderr)
        return 2
    res = compare(before, after, args.rtol)
    res["before"], res["after"] = args.before, args.after
    print(f"{res['rows_compared']} rows, {res['values_compared']} values compared (rtol {args.rtol:g}): "
          f"{len(res['differences'])} differ; rows only before: {len(res['rows_only_before'])}, "
          f"only after: {len(res['rows_only_after'])} -> {'IDENTICAL' if res['identical'] else 'DIFFERENT'}")
    for d in res["differences"][:50]:
        print(f"  {' / '.join(map(str, d['row']))}: {d['metric']} {d['stat']} {d['before']} -> {d['after']}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if res["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
