"""The results table, the goal ratios, and the JSON written to bench/results/latest.json."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.loadgen import RunResult
    from bench.run import Measurement

# The targets: sevrouter/alertmanager alerts/s per webhook size, and p99 at half load.
RATIO_GOAL = {1: 0.6, 20: 2.0}
P99_GOAL_MS = 50.0


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "timeout"
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.0f}%"


def background(run: RunResult | None) -> float:
    """CPU used on our two cores by anything but the target, the generator and Redis."""
    if run is None or not run.probe_end:
        return math.nan
    total = run.cpu_share("core0") + run.cpu_share("core1")
    ours = sum(run.cpu_share(k) for k in ("server", "gen", "redis") if k in run.probe_end)
    return max(0.0, total - ours)


def _errors(run: RunResult | None) -> int:
    return 0 if run is None else run.conn_errors + run.unfinished


def max_background(m: Measurement) -> float:
    values = [v for v in (background(m.saturation), background(m.half)) if not math.isnan(v)]
    return max(values) if values else math.nan


def _find(results: Sequence[Measurement], target: str, size: int, mode: str) -> Measurement | None:
    for m in results:
        if (m.target, m.size, m.mode) == (target, size, mode) and m.status == "ok":
            return m
    return None


def _alerts_per_s(m: Measurement | None) -> float:
    # Only 2xx answers count: a server that rejects alerts quickly has not ingested them.
    if m is None or m.saturation is None:
        return math.nan
    return m.saturation.ok / m.saturation.window_s * m.size


def _ok_rps(m: Measurement | None) -> float:
    if m is None or m.saturation is None:
        return math.nan
    return m.saturation.ok / m.saturation.window_s


def render(
    results: Sequence[Measurement], env: Mapping[str, Any], describe: Mapping[str, str]
) -> str:
    out: list[str] = []
    out.append(
        f"sevrouter bench  {env['when']}  server on core {env['server_cpu']}, generator+redis on "
        f"core {env['client_cpu']}  {env['connections']} conns  window {env['duration_s']}s "
        f"after {env['warmup_s']}s warmup  ({env['elapsed_s']}s total)"
    )
    sizes = env.get("body_sizes", {})
    out.append(
        "bodies: "
        + ", ".join(
            f"{k}-alert webhook {v['webhook_bytes']:,} B / v2 {v['am_v2_bytes']:,} B"
            for k, v in sizes.items()
        )
    )
    for name, text in describe.items():
        out.append(f"  {name:<12} {text}")
    out.append("")
    header = (
        f"{'target':<12} {'scenario':<12}|{'req/s':>9} {'alerts/s':>10} {'p50 ms':>7} "
        f"{'p99 ms':>7} |{'½ req/s':>8} {'p50 ms':>7} {'p99 ms':>7} |{'non2xx':>7} "
        f"{'errors':>6} |{'srv cpu':>7} {'gen cpu':>7} {'other':>6}"
    )
    out.append(header)
    out.append("-" * len(header))
    skipped_seen: set[tuple[str, str]] = set()
    for m in results:
        scen = f"{m.size:>2} {m.mode}"
        if m.status != "ok" or m.saturation is None:
            key = (m.target, m.note)
            if key in skipped_seen:
                continue
            skipped_seen.add(key)
            ran = any(r.target == m.target and r.status == "ok" for r in results)
            scope = "(rest)" if ran else "(all)"
            out.append(f"{m.target:<12} {scope:<12}| {m.status.upper()}: {m.note}")
            continue
        sat, half = m.saturation, m.half
        row = (
            f"{m.target:<12} {scen:<12}|{_num(sat.rps):>9} {_num(_alerts_per_s(m)):>10} "
            f"{_ms(sat.percentile(0.5)):>7} {_ms(sat.percentile(0.99)):>7} |"
        )
        if half is not None:
            row += (
                f"{_num(half.target_rate or math.nan):>8} {_ms(half.percentile(0.5)):>7} "
                f"{_ms(half.percentile(0.99)):>7} |"
            )
        else:
            row += f"{'-':>8} {'-':>7} {'-':>7} |"
        non2xx = sat.non_2xx + (half.non_2xx if half else 0)
        row += (
            f"{non2xx:>7} {_errors(sat) + _errors(half):>6} |{_pct(sat.cpu_share('server')):>7} "
            f"{_pct(sat.cpu_share('gen')):>7} {_pct(max_background(m)):>6}"
        )
        if m.note:
            row += f"  ! {m.note}"
        out.append(row)
    out.append("")
    out.append("req/s, alerts/s, p50/p99: closed-loop saturation (alerts/s counts 2xx only).")
    out.append("½ req/s, p50/p99: open loop at half the saturation rate, latency from scheduled")
    out.append("send time. errors: connection failures + requests unanswered within the grace.")
    out.append("srv/gen cpu: share of one core used by the target / the generator at saturation;")
    out.append("other: CPU used by unrelated processes during either window; above ~15% the row")
    out.append("is unreliable unless --nice was given (then they mostly fill our idle time).")
    out.append("")
    out.extend(_goals(results))
    out.extend(_headroom(results))
    return "\n".join(out)


def goals(results: Sequence[Measurement]) -> list[dict[str, Any]]:
    rows = []
    for size in (1, 20):
        for mode in ("fresh", "repeated"):
            sev = _find(results, "sevrouter", size, mode)
            am = _find(results, "alertmanager", size, mode)
            bare = _find(results, "bare", size, mode)
            vs_am = _alerts_per_s(sev) / _alerts_per_s(am)
            vs_bare = _ok_rps(sev) / _ok_rps(bare)
            am_vs_bare = _ok_rps(am) / _ok_rps(bare)
            p99 = math.nan
            if sev is not None and sev.half is not None:
                p99 = sev.half.percentile(0.99) * 1e3
            rows.append(
                {
                    "size": size,
                    "mode": mode,
                    "sevrouter_vs_alertmanager_alerts": vs_am,
                    "goal_vs_alertmanager": RATIO_GOAL[size],
                    "ratio_ok": None if math.isnan(vs_am) else vs_am >= RATIO_GOAL[size],
                    "sevrouter_vs_bare_rps": vs_bare,
                    "alertmanager_vs_bare_rps": am_vs_bare,
                    "sevrouter_p99_half_ms": p99,
                    "p99_ok": None if math.isnan(p99) else p99 < P99_GOAL_MS,
                }
            )
    return rows


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _x(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _goals(results: Sequence[Measurement]) -> list[str]:
    out = [
        f"{'scenario':<12}| {'sevrouter/AM alerts/s':>22} {'goal':>6} {'':>4} | "
        f"{'sevrouter/bare':>14} {'AM/bare':>8} | {'sevrouter p99@½':>15} {'goal':>7} {'':>4}",
    ]
    out.append("-" * len(out[0]))
    for g in goals(results):
        p99 = g["sevrouter_p99_half_ms"]
        p99_text = "n/a" if math.isnan(p99) else ("timeout" if math.isinf(p99) else f"{p99:.1f}")
        out.append(
            f"{g['size']:>2} {g['mode']:<9}| {_x(g['sevrouter_vs_alertmanager_alerts']):>22} "
            f"{'>=' + str(g['goal_vs_alertmanager']):>6} {_verdict(g['ratio_ok']):>4} | "
            f"{_x(g['sevrouter_vs_bare_rps']):>14} {_x(g['alertmanager_vs_bare_rps']):>8} | "
            f"{p99_text:>15} {'<' + str(int(P99_GOAL_MS)) + 'ms':>7} {_verdict(g['p99_ok']):>4}"
        )
    out.append("")
    return out


def _headroom(results: Sequence[Measurement]) -> list[str]:
    out = []
    for size in (1, 20):
        sink = [m for m in results if m.target == "sink" and m.size == size and m.saturation]
        others = [m for m in results if m.target != "sink" and m.size == size and m.saturation]
        if not sink or not others:
            continue
        ceiling = max(sink, key=lambda m: m.saturation.rps if m.saturation else 0.0)
        fastest = max(others, key=lambda m: m.saturation.rps if m.saturation else 0.0)
        assert ceiling.saturation is not None and fastest.saturation is not None
        out.append(
            f"generator headroom, {size}-alert: sink answered {ceiling.saturation.rps:,.0f} req/s "
            f"(gen cpu {_pct(ceiling.saturation.cpu_share('gen'))}) vs fastest target "
            f"{fastest.target} {fastest.mode} {fastest.saturation.rps:,.0f} req/s "
            f"(gen cpu {_pct(fastest.saturation.cpu_share('gen'))}, srv cpu "
            f"{_pct(fastest.saturation.cpu_share('server'))}): "
            f"{ceiling.saturation.rps / fastest.saturation.rps:.1f}x"
        )
    return out


def _run_json(run: RunResult | None, size: int) -> dict[str, Any] | None:
    if run is None:
        return None

    def ms(q: float) -> float | None:
        value = run.percentile(q)
        return None if math.isnan(value) or math.isinf(value) else round(value * 1e3, 3)

    lag = sorted(run.send_lag)
    data: dict[str, Any] = {
        "mode": run.mode,
        "window_s": run.window_s,
        "target_rate": run.target_rate,
        "rps": round(run.rps, 1),
        "ok_rps": round(run.ok / run.window_s, 1),
        "alerts_per_s": round(run.ok / run.window_s * size, 1),
        "completed": run.completed,
        "sent": run.sent,
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
        "non_2xx": run.non_2xx,
        "conn_errors": run.conn_errors,
        "unfinished": run.unfinished,
        "latency_ms": {f"p{q}": ms(q / 100) for q in (50, 90, 99, 99.9)} | {"max": ms(1.0)},
        "probes": {"start": run.probe_start, "end": run.probe_end},
        "background_cpu": None if math.isnan(background(run)) else round(background(run), 3),
        "cpu_share": {
            key: round(run.cpu_share(key), 3)
            for key in run.probe_end
            if key != "wall" and not math.isnan(run.cpu_share(key))
        },
    }
    if lag:
        data["send_lag_ms_p99"] = round(lag[min(len(lag) - 1, int(0.99 * len(lag)))] * 1e3, 3)
    return data


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(results: Sequence[Measurement], env: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = _clean(
        {
            "environment": dict(env),
            "results": [
                {
                    "target": m.target,
                    "size": m.size,
                    "mode": m.mode,
                    "status": m.status,
                    "note": m.note,
                    "fresh_pool_wrapped": m.wrapped,
                    **m.extra,
                    "saturation": _run_json(m.saturation, m.size),
                    "half_saturation": _run_json(m.half, m.size),
                }
                for m in results
            ],
            "goals": goals(results),
        }
    )
    return data
