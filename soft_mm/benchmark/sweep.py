# Copyright (c) soft_mm contributors. All rights reserved.
"""The resolution sweep: how time and peak memory grow with the number of
tokens, per model and pass.

Sizes run from small to large (ordered by pixels), so every point but the
first two of a model has a curve to be predicted from: a power law
``y = c * tokens^k`` through the model's two largest measured points below
it (memory: the growth above the model's smallest measured peak, the fixed
cost of weights and workspaces). :class:`SweepGate` skips a point whose
prediction exceeds the machine (memory) or the time budget, and records
the prediction in the row instead of running into the OOM killer.
:func:`fit_exponents` gives each model's exponent ``k`` (time ∝ tokens^k)
per size range; :func:`plot_sweep` draws the log-log pictures.

Tokens are the stride-4 grid every model here starts from,
``H * W / 16``: the count each stage scales with.
"""
import math
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

#: Sizes of the sweep: 224 to 2048 square, and the Cityscapes shape.
SWEEP_SIZES = ((224, 224), (384, 384), (512, 512), (768, 768),
               (1024, 1024), (1024, 2048), (1536, 1536), (2048, 2048))
#: Models of the sweep (the benchmark tool's names).
SWEEP_MODELS = ('soft-tiny', 'soft-tiny-grid7', 'pvt-v2-b1', 'deit-tiny',
                'swin-t')
#: Ranges the exponents are fitted over, in square sides.
FIT_RANGES = ((224, 512), (512, 1024), (1024, 2048))
#: Columns a sweep adds to every row: what a skipped point was predicted.
PREDICTION_FIELDS = ('pred_ms', 'pred_MiB')


def tokens(height: int, width: int) -> int:
    """Tokens on the stride-4 grid of an ``height x width`` input."""
    return height * width // 16


def sort_sizes(sizes: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Sizes from fewest to most pixels (predictions need smaller ones)."""
    return sorted(set(sizes), key=lambda s: (s[0] * s[1], s))


def fit_power(points: Sequence[Tuple[float, float]]) -> Tuple[float, float]:
    """Least-squares fit of ``y = c * x^k`` in log-log space.

    Args:
        points: ``(x, y)`` with positive values, at least two distinct x.

    Returns:
        tuple[float, float]: ``(k, c)``.
    """
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        raise ValueError('fit_power needs two points with distinct, '
                         f'positive x and positive y, got {list(points)}')
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    k = (sum((x - mx) * (y - my) for x, y in pts) /
         sum((x - mx)**2 for x, _ in pts))
    return k, math.exp(my - k * mx)


def predict_point(measured: Sequence[dict], n: int) -> Optional[dict]:
    """What a model's curve predicts at ``n`` tokens.

    Args:
        measured: The model's measured points of one pass, dicts with
            ``tokens``, ``time_ms`` and ``peak_MiB``.
        n (int): Tokens of the point to predict.

    Returns:
        dict | None: ``time_ms``, ``peak_MiB``, ``k_time``, ``k_mem`` and
        ``base_MiB`` (the fixed cost memory grows above: 0.9 x the smallest
        peak below the two fitted points; 0 when there is none, the total
        then following the power law), or None with fewer than two measured
        points below ``n``.
    """
    below = sorted((p for p in measured if p['tokens'] < n),
                   key=lambda p: p['tokens'])
    if len({p['tokens'] for p in below}) < 2:
        return None
    last = below[-2:]
    k_time, c_time = fit_power([(p['tokens'], p['time_ms']) for p in last])
    # The fixed cost comes from a point below the two fitted ones: taken
    # from the smaller of those two, it would leave that point almost no
    # growth, and the growth between the two would look steeply
    # super-linear (a doubling read as 9x).
    base = 0.9 * min((p['peak_MiB'] for p in below[:-2]), default=0.0)
    growth = [(p['tokens'], max(p['peak_MiB'] - base, 1.0)) for p in last]
    k_mem, c_mem = fit_power(growth)
    # Never predict less than the largest measured point: costs do not
    # shrink with more tokens.
    k_time, k_mem = max(k_time, 0.0), max(k_mem, 0.0)
    return dict(time_ms=last[-1]['time_ms'] * (n / last[-1]['tokens'])**k_time,
                peak_MiB=base + growth[-1][1] *
                (n / growth[-1][0])**k_mem,
                k_time=k_time, k_mem=k_mem, base_MiB=base)


def measured_points(rows: Sequence[dict], name: str, pass_: str,
                    name_field: str = 'model') -> List[dict]:
    """The ``ok`` rows of one model and pass, one point per size: ``tokens``
    and the medians over rounds of ``time_ms`` and ``peak_MiB`` (the rows'
    ``peak_mem_MiB``)."""
    by_size: Dict[Tuple[int, int], List[dict]] = {}
    for row in rows:
        if (row[name_field] == name and row.get('pass') == pass_
                and row['status'] == 'ok'):
            by_size.setdefault((row['height'], row['width']), []).append(row)
    points = []
    for (h, w), mine in sorted(by_size.items()):
        peaks = [r['peak_mem_MiB'] for r in mine
                 if r.get('peak_mem_MiB') not in ('', None)]
        points.append(dict(
            height=h, width=w, tokens=tokens(h, w),
            time_ms=statistics.median(r['time_ms'] for r in mine),
            peak_MiB=statistics.median(peaks) if peaks else math.nan))
    return points


class SweepGate:
    """Decides, before a sweep point runs, whether it fits the machine.

    Args:
        max_step_s (float): A point predicted slower than this per step is
            skipped.
        max_mem_MiB (float): A point predicted to need more memory (above
            the process's level at the start of the timing loop) is
            skipped.
        name_field (str): Column of the model name in the rows.

    Called as ``gate(case, rows)`` with the rows measured so far; returns
    None (run it) or ``(why, fields)``, the fields being
    :data:`PREDICTION_FIELDS`. A case is predicted from the rows of its
    own series: the same model in the same settings (pass, task, batch,
    ...) at other sizes. A point above a smaller one of its series that
    failed (error, timeout: out of memory, most likely) is not run either.
    """

    def __init__(self, max_step_s: float, max_mem_MiB: float,
                 name_field: str = 'model'):
        self.max_step_s, self.max_mem_MiB = max_step_s, max_mem_MiB
        self.name_field = name_field

    def series(self, case, rows: Sequence[dict]) -> List[dict]:
        """The rows of ``case``'s model in its settings but the size."""
        same = {k: v for k, v in case.settings.items()
                if k not in ('height', 'width')}
        return [r for r in rows if r[self.name_field] == case.name
                and all(r.get(k) == v for k, v in same.items())]

    def __call__(self, case, rows: Sequence[dict]):
        s = case.settings
        n = tokens(s['height'], s['width'])
        rows = self.series(case, rows)
        for row in rows:
            if (row['status'] in ('error', 'timeout', 'oom')
                    and tokens(row['height'], row['width']) < n):
                return (f"not run: {row['height']}x{row['width']} already "
                        f"ended in {row['status']} ({row.get('note', '')})"
                        [:300], {})
        pred = predict_point(
            measured_points(rows, case.name, s['pass'], self.name_field), n)
        if pred is None:
            return None
        over = []
        if pred['time_ms'] / 1e3 > self.max_step_s:
            over.append(f'{self.max_step_s:g} s/step budget')
        if pred['peak_MiB'] > self.max_mem_MiB:
            over.append(f'{self.max_mem_MiB / 1024:.1f} GiB memory budget')
        if not over:
            return None
        why = (f"predicted {pred['time_ms'] / 1e3:.1f} s/step, "
               f"{pred['peak_MiB'] / 1024:.2f} GiB from its curve (time ∝ "
               f"tokens^{pred['k_time']:.2f}, memory above "
               f"{pred['base_MiB']:.0f} MiB ∝ tokens^{pred['k_mem']:.2f}): "
               f"over the {' and the '.join(over)}; not run")
        return why, dict(pred_ms=round(pred['time_ms'], 1),
                         pred_MiB=round(pred['peak_MiB'], 1))


def fit_exponents(rows: Sequence[dict], models: Sequence[str],
                  passes: Sequence[str],
                  ranges: Sequence[Tuple[int, int]] = FIT_RANGES,
                  name_field: str = 'model') -> List[dict]:
    """Each model's exponents per range: time ∝ tokens^k and peak memory
    (above the process's level at the start of the step) ∝ tokens^k,
    fitted over the square sizes measured within the range. At small sizes
    fixed costs (weights' gradients, workspaces) keep the memory exponent
    well below 1.

    Returns:
        list[dict]: ``model``, ``pass``, ``range`` (``'224-512'``),
        ``k_time``, ``k_mem`` (None where fewer than two points), and
        ``points`` (how many).
    """
    fits = []
    for pass_ in passes:
        for name in models:
            points = measured_points(rows, name, pass_, name_field)
            square = [p for p in points if p['height'] == p['width']]
            for lo, hi in ranges:
                inside = [p for p in square if lo <= p['height'] <= hi]
                entry = dict(model=name, range=f'{lo}-{hi}',
                             points=len(inside), k_time=None, k_mem=None,
                             **{'pass': pass_})
                if len({p['tokens'] for p in inside}) >= 2:
                    entry['k_time'] = fit_power(
                        [(p['tokens'], p['time_ms']) for p in inside])[0]
                    memory = [(p['tokens'], p['peak_MiB']) for p in inside
                              if not math.isnan(p['peak_MiB'])]
                    if len(memory) >= 2:
                        entry['k_mem'] = fit_power(memory)[0]
                fits.append(entry)
    return fits


def exponent_markdown(fits: Sequence[dict]) -> List[str]:
    """The fitted exponents as a markdown table, a row per model and
    pass, a column per range (``time k / memory k``)."""
    ranges = list(dict.fromkeys(f['range'] for f in fits))
    lines = ['## Fitted exponents (time ∝ tokens^k / peak memory above the '
             'start ∝ tokens^k)', '',
             '| model | pass | ' + ' | '.join(ranges) + ' |',
             '|' + '---|' * (2 + len(ranges))]
    keys = list(dict.fromkeys((f['model'], f['pass']) for f in fits))
    for name, pass_ in keys:
        cells = []
        for r in ranges:
            f = next(f for f in fits if f['model'] == name and
                     f['pass'] == pass_ and f['range'] == r)
            if f['k_time'] is None:
                cells.append('n/a')
            else:
                mem = 'n/a' if f['k_mem'] is None else f"{f['k_mem']:.2f}"
                cells.append(f"{f['k_time']:.2f} / {mem}")
        lines.append(f'| {name} | {pass_} | ' + ' | '.join(cells) + ' |')
    return lines + ['']


def pivot_markdown(rows: Sequence[dict], models: Sequence[str],
                   passes: Sequence[str],
                   name_field: str = 'model') -> List[str]:
    """The sweep at a glance: per pass, a row per size and a column per
    model, ``seconds / GiB`` (median time per step, median peak memory
    above the start); a skipped point shows its prediction in italics."""
    lines = []
    sizes = sort_sizes([(r['height'], r['width']) for r in rows])
    for pass_ in passes:
        points = {name: {(p['height'], p['width']): p
                         for p in measured_points(rows, name, pass_,
                                                  name_field)}
                  for name in models}
        lines += [f'## {pass_}: seconds per step / GiB above the start', '',
                  '| size | tokens | ' + ' | '.join(models) + ' |',
                  '|' + '---|' * (2 + len(models))]
        for h, w in sizes:
            cells = []
            for name in models:
                p = points[name].get((h, w))
                skipped = [r for r in rows
                           if r[name_field] == name and r.get('pass') ==
                           pass_ and (r['height'], r['width']) == (h, w)
                           and r['status'] != 'ok']
                if p is not None:
                    cells.append(f"{p['time_ms'] / 1e3:.2f} / "
                                 f"{p['peak_MiB'] / 1024:.2f}")
                elif skipped and skipped[0].get('pred_ms') not in ('', None):
                    r = skipped[0]
                    cells.append(f"*{float(r['pred_ms']) / 1e3:.1f} / "
                                 f"{float(r['pred_MiB']) / 1024:.2f}*")
                else:
                    cells.append(skipped[0]['status'] if skipped else '')
            lines.append(f'| {h}x{w} | {tokens(h, w)} | ' +
                         ' | '.join(cells) + ' |')
        lines.append('')
    return lines + ['*Italics*: predicted from the smaller sizes, not run.',
                    '']


def plot_sweep(rows: Sequence[dict], models: Sequence[str],
               passes: Sequence[str], title: str, path_stem: str,
               name_field: str = 'model') -> List[str]:
    """Log-log pictures of a sweep: ``STEM_time.png`` and
    ``STEM_memory.png``, a panel per pass, a line per model, skipped points
    drawn hollow at their predicted value.

    Returns:
        list[str]: The files written.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    written = []
    for key, pred_key, label, scale, fname in (
            ('time_ms', 'pred_ms', 'time per step (s)', 1e-3, 'time'),
            ('peak_MiB', 'pred_MiB', 'peak memory above start (GiB)',
             1 / 1024, 'memory')):
        fig, axes = plt.subplots(1, len(passes), squeeze=False,
                                 figsize=(6.5 * len(passes), 5))
        for ax, pass_ in zip(axes[0], passes):
            for i, name in enumerate(models):
                color = f'C{i}'
                points = [p for p in measured_points(rows, name, pass_,
                                                     name_field)
                          if not math.isnan(p[key])]
                if points:
                    ax.plot([p['tokens'] for p in points],
                            [p[key] * scale for p in points], 'o-',
                            color=color, label=name)
                predicted = sorted(
                    (tokens(r['height'], r['width']), r[pred_key] * scale)
                    for r in rows
                    if r[name_field] == name and r.get('pass') == pass_
                    and r['status'] == 'skipped'
                    and r.get(pred_key) not in ('', None))
                if predicted:
                    tail = points[-1:] and [(points[-1]['tokens'],
                                             points[-1][key] * scale)]
                    line = tail + predicted
                    ax.plot([x for x, _ in line], [y for _, y in line],
                            '--', color=color, alpha=0.6)
                    ax.plot([x for x, _ in predicted],
                            [y for _, y in predicted], 'o', color=color,
                            markerfacecolor='none',
                            label=None if points else name)
            ax.set_xscale('log')
            ax.set_yscale('log')
            ax.set_xlabel('tokens at stride 4 (H·W/16)')
            ax.set_ylabel(label)
            ax.set_title(f'{pass_} (hollow: predicted, not run)',
                         fontsize=10)
            ax.grid(True, which='both', alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = f'{path_stem}_{fname}.png'
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
