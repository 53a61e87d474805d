# Copyright (c) soft_mm contributors. All rights reserved.
"""What a benchmark writes: the header (machine, protocol, loads), its
tables in markdown, and the JSON record."""
import json
from typing import Dict, List, Sequence

from .machine import banner


def header_lines(header: dict) -> List[str]:
    """The machine, the checkouts and the protocol, one fact per line."""
    roots = ', '.join(f'{k}: {v}' for k, v in header['roots'].items())
    lines = [
        f"machine: {header['cpu']}; nproc {header['nproc']} "
        f"({header['cpu_count']} logical CPUs)"
        + (f", {header['mem_GiB']:g} GiB" if header.get('mem_GiB') else '')
        + f"; device {header['device']}"
        + (f" ({header['gpu']})" if header.get('gpu') else ''),
        f"torch {header['torch']}, python {header['python']}, "
        f"{header['threads']} threads per measurement",
        f'soft_mm: {roots}',
        f"protocol: {header['rounds']} interleaved rounds, a fresh python "
        f"process per measurement, {header['warmup']} warm-up + "
        f"{header['iters']} timed steps each; a round's time is the median "
        'of its timed steps',
        f"busy: load from other processes above {header['busy_threshold']:g}"
        ' (1-min load average; CPU time of others from /proc/stat)',
    ]
    if header.get('command'):
        lines.insert(0, f"command: {header['command']}  ({header['date']})")
    return lines


def markdown_header(title: str, header: dict) -> List[str]:
    """The title, a loud warning if the machine was busy, the header lines
    and the load record."""
    lines = [f'# {title}', '']
    if header['warnings']:
        lines += [
            '> **WARNING: THE MACHINE WAS BUSY DURING THIS BENCHMARK. THE '
            'TIMES ARE NOT TRUSTWORTHY: do not publish them; rerun on a '
            'quiet machine.**', '>'
        ] + [f'> - {w}' for w in header['warnings'][:20]] + ['']
    lines += [f'- {ln}' for ln in header_lines(header)]
    loads = '; '.join(
        f"{d['label']}: {' '.join(f'{v:.2f}' for v in d['load'])}"
        + (' **BUSY**' if d['busy'] else '') for d in header['loads'])
    return lines + [f'- load average (1 / 5 / 15 min): {loads}', '']


def _fmt(value, spec='.1f') -> str:
    return '' if value is None else format(value, spec)


def _ratio(value) -> str:
    return _fmt(value, '.2f') + 'x' if value else ''


def model_markdown(summary: Sequence[dict],
                   titles: Dict[int, str]) -> List[str]:
    """One markdown table per table of the model benchmark: min / median /
    max ms, images per second, time and memory against the baseline, and
    the whole process's peak resident set (CPU)."""
    lines = []
    for table, title in titles.items():
        entries = [e for e in summary if e['table'] == table]
        if not entries:
            continue
        base = entries[0]['baseline']
        lines += [
            f'## {title}', '',
            f'| model | min ms | median ms | max ms | img/s | time vs '
            f'{base} | peak MiB | memory vs {base} | process MiB | '
            'params (M) | rounds | notes |', '|' + '---|' * 12
        ]
        for e in entries:
            if e['status'] != 'ok':
                cells = [e['name'], '', e['status'], '', '', '', '', '', '',
                         '', e['rounds'], e['note']]
            else:
                note = e['note'] + (f"; {e['busy_rounds']} busy round(s)"
                                    if e['busy_rounds'] else '')
                cells = [
                    e['name'], _fmt(e['min_ms']), _fmt(e['median_ms']),
                    _fmt(e['max_ms']), e['extra'].get('img_per_s', ''),
                    _ratio(e.get('time_ratio')), _fmt(e['peak_MiB']),
                    _ratio(e.get('mem_ratio')), _fmt(e.get('process_MiB')),
                    e['params_M'], e['rounds'],
                    note.strip('; ')
                ]
            lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
        lines.append('')
    return lines


def variant_markdown(summary: Sequence[dict], rows: Dict[int, Sequence],
                     columns: Sequence[str], variants: Sequence[str],
                     ratios: Sequence[tuple],
                     errors: Sequence[str] = ()) -> List[str]:
    """A table with one row per benchmark table and the variants (cases of
    that table) side by side: median ms and peak MiB of each, ratios of
    medians, and the variants' error against the float64 reference.

    Args:
        summary (Sequence[dict]): :func:`~soft_mm.benchmark.protocol
            .summarise`'s entries.
        rows (dict): Table to the leading cells of its row.
        columns (Sequence[str]): Names of the leading cells.
        variants (Sequence[str]): Case names, in column order.
        ratios (Sequence[tuple]): ``(label, numerator, denominator, what)``
            with ``what`` ``'time'`` or ``'mem'``.
        errors (Sequence[str]): Variants whose ``err`` gets a column.
    """
    header = (list(columns) + [f'{v} ms' for v in variants] +
              [f'{v} MiB' for v in variants] + [r[0] for r in ratios] +
              [f'{v} err' for v in errors])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for table, lead in rows.items():
        entry = {e['name']: e for e in summary if e['table'] == table}

        def value(name, key):
            e = entry.get(name)
            return e.get(key) if e and e['status'] == 'ok' else None

        cells = list(lead)
        cells += [_fmt(value(v, 'median_ms'), '.2f') or 'n/a'
                  for v in variants]
        cells += [_fmt(value(v, 'peak_MiB')) or 'n/a' for v in variants]
        for _, num, den, what in ratios:
            key = 'median_ms' if what == 'time' else 'peak_MiB'
            a, b = value(num, key), value(den, key)
            cells.append(f'{a / b:.2f}x' if a and b else 'n/a')
        for v in errors:
            err = (value(v, 'extra') or {}).get('err')
            cells.append('n/a' if err is None else f'{err:.1e}')
        lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
    return lines


def write_report(stem: str, text: str, header: dict,
                 summary: Sequence[dict]) -> None:
    """Write ``STEM.md`` (the text) and ``STEM.json`` (header and summary),
    and print the text, the busy warning if there is one, and where the
    files are (``STEM.csv`` holds every measurement)."""
    with open(stem + '.md', 'w') as f:
        f.write(text)
    with open(stem + '.json', 'w') as f:
        json.dump(dict(header=header, summary=list(summary)), f, indent=1,
                  default=str)
    print()
    print(text)
    if header['warnings']:
        print(banner(header['warnings'], header['busy_threshold']))
    print(f'wrote {stem}.md, {stem}.csv and {stem}.json')
