# Copyright (c) soft_mm contributors. All rights reserved.
"""configs/soft/metafile.yml follows mmpretrain's metafile rules.

The rules are those of mmpretrain's ``.dev_scripts/check_metafile.py``
(which mmpretrain does not install), made strict, plus its naming and
third-party conventions:

- the metafile is imported by ``model-index.yml``;
- exactly one Collection, with ``Name``, ``Metadata``, ``Paper`` (``Title``
  and ``URL``) and an existing ``README``;
- every model has a unique ``Name`` of 3-5 fields joined by ``_``,
  ``Metadata`` with ``Parameters`` and ``FLOPs``, ``Results`` whose
  ``Dataset`` is a string, an existing ``Config`` and ``In Collection``
  naming the collection;
- a model whose numbers are the authors' (``Converted From``, with
  ``Weights`` and ``Code``) has ``3rdparty`` in its name, and only such a
  model does; the README's table marks exactly those rows with ``*`` and
  explains the mark in a footnote;
- every path named (configs, local weights, README links) exists.

Each check returns a list of problems; the tests run them on the real files
and on broken copies, so that every check is seen to fail when it should.
"""
import copy
import os.path as osp
import re

import pytest
import yaml

from tool_utils import ROOT

METAFILE = 'configs/soft/metafile.yml'
MODEL_INDEX = 'model-index.yml'
NAME_FIELD = re.compile(r'^[a-z0-9][a-z0-9.-]*$')
URL = re.compile(r'^https?://\S+$')


def load_yaml(rel):
    with open(osp.join(ROOT, rel), encoding='utf-8') as f:
        return yaml.safe_load(f)


def read_text(rel):
    with open(osp.join(ROOT, rel), encoding='utf-8') as f:
        return f.read()


def check_imported(index: dict, metafile: str = METAFILE) -> list:
    imports = index.get('Import') or []
    problems = [f'model-index.yml imports a missing file {p}'
                for p in imports if not osp.isfile(osp.join(ROOT, p))]
    if metafile not in imports:
        problems.append(f'{metafile} is not imported by model-index.yml')
    return problems


def check_collections(meta: dict) -> list:
    collections = meta.get('Collections') or []
    if len(collections) != 1:
        return [f'one metafile needs exactly one collection, got '
                f'{len(collections)}']
    col = collections[0]
    problems = []
    if not col.get('Name'):
        problems.append('the collection has no Name')
    if not isinstance(col.get('Metadata'), dict):
        problems.append('the collection has no Metadata')
    paper = col.get('Paper')
    if not isinstance(paper, dict):
        problems.append('the collection needs a Paper with Title and URL')
    else:
        if not paper.get('Title'):
            problems.append('the collection Paper has no Title')
        if not URL.match(str(paper.get('URL', ''))):
            problems.append('the collection Paper has no URL')
    readme = col.get('README')
    if not readme:
        problems.append('the collection has no README')
    elif not osp.isfile(osp.join(ROOT, readme)):
        problems.append(f'the collection README {readme} does not exist')
    return problems


def is_local(path: str) -> bool:
    return not URL.match(path)


def check_model(model: dict, collection: str) -> list:
    name = model.get('Name')
    if not name:
        return ['a model has no Name']
    problems = []

    def bad(msg):
        problems.append(f'{name}: {msg}')

    fields = name.split('_')
    if not 3 <= len(fields) <= 5:
        bad(f'a name needs 3-5 fields joined by "_", got {len(fields)}')
    if not all(NAME_FIELD.match(f) for f in fields):
        bad('name fields must be lower-case letters, digits, "-" and "."')

    meta = model.get('Metadata')
    if not isinstance(meta, dict):
        bad('no Metadata')
    else:
        for key in ('Parameters', 'FLOPs'):
            value = meta.get(key)
            if not isinstance(value, int) or value <= 0:
                bad(f'Metadata.{key} must be a positive integer, got '
                    f'{value!r}')

    results = model.get('Results')
    if not isinstance(results, list) or not results:
        bad('no Results')
    else:
        for result in results:
            if not isinstance(result.get('Dataset'), str):
                bad('Results Dataset must be a string (the training data '
                    'goes in Metadata.Training Data)')
            if not result.get('Task'):
                bad('a result has no Task')
            metrics = result.get('Metrics')
            if not isinstance(metrics, dict) or not metrics or not all(
                    isinstance(v, (int, float)) for v in metrics.values()):
                bad('a result needs numeric Metrics')

    config = model.get('Config')
    if not config:
        bad('no Config')
    elif not osp.isfile(osp.join(ROOT, config)):
        bad(f'the config {config} does not exist')
    elif osp.basename(config)[:-3] != '_'.join(
            f for f in fields if f != '3rdparty'):
        bad(f'the name without "3rdparty" should be the config name '
            f'{osp.basename(config)[:-3]}')

    if model.get('In Collection') != collection:
        bad(f'In Collection must be {collection!r}, got '
            f'{model.get("In Collection")!r}')

    paper = model.get('Paper')
    if paper is not None and not (isinstance(paper, dict)
                                  and paper.get('Title')
                                  and URL.match(str(paper.get('URL', '')))):
        bad('a model Paper needs Title and URL')

    converted = model.get('Converted From')
    if converted is not None:
        if '3rdparty' not in fields:
            bad('converted from other code, so its name needs "3rdparty"')
        if not isinstance(converted, dict):
            bad('Converted From must hold Weights and Code')
        else:
            for key in ('Weights', 'Code'):
                if not URL.match(str(converted.get(key, ''))):
                    bad(f'Converted From.{key} must be a URL, got '
                        f'{converted.get(key)!r}')
    elif '3rdparty' in fields:
        bad('"3rdparty" in the name but no Converted From')

    weights = model.get('Weights')
    if weights is not None:
        if is_local(weights) and not osp.isfile(osp.join(ROOT, weights)):
            bad(f'the weights {weights} do not exist')
        if weights.endswith('.pth') and not osp.basename(weights).startswith(
                name):
            bad(f'the checkpoint {osp.basename(weights)} should start with '
                'the model name')
    return problems


def check_models(meta: dict) -> list:
    collection = (meta.get('Collections') or [{}])[0].get('Name')
    models = meta.get('Models') or []
    problems = [] if models else ['no Models']
    names = [m.get('Name') for m in models]
    for dup in sorted({n for n in names if names.count(n) > 1 and n}):
        problems.append(f'{dup}: the name is used twice')
    for model in models:
        problems += check_model(model, collection)
    return problems


def readme_rows(readme: str) -> dict:
    """First cell of each table row -> the whole row."""
    rows = {}
    for line in readme.splitlines():
        if line.startswith('|') and not re.match(r'^\|\s*:?-', line):
            cell = line.split('|')[1].strip()
            rows[cell] = line
    return rows


def check_readme(meta: dict, readme: str) -> list:
    """Each model has a row named after it; ``*`` marks the third-party
    ones, and a footnote explains the mark."""
    problems = []
    rows = readme_rows(readme)
    marked = False
    for model in meta.get('Models') or []:
        name = model.get('Name')
        third = 'Converted From' in model
        cell = f'`{name}`' + ('\\*' if third else '')
        if cell not in rows:
            other = f'`{name}`' + ('' if third else '\\*')
            if other in rows:
                problems.append(
                    f'{name}: README row is {"not " if third else ""}'
                    'marked with * but the model is '
                    f'{"" if third else "not "}converted')
            else:
                problems.append(f'{name}: no README table row for it')
        marked = marked or third
    if marked and not re.search(r'^\*Models with \\\* are converted', readme,
                                re.M):
        problems.append('README: no footnote explaining the * mark')
    return problems


def check_readme_links(readme: str, readme_path: str) -> list:
    """Relative links of the README point to files that exist."""
    base = osp.dirname(osp.join(ROOT, readme_path))
    problems = []
    for target in re.findall(r'\]\(([^)\s]+)\)', readme):
        if URL.match(target) or target.startswith('#'):
            continue
        path = target.split('#')[0]
        if not osp.exists(osp.normpath(osp.join(base, path))):
            problems.append(f'README links to a missing file {target}')
    return problems


# ---- the real files ----------------------------------------------------


@pytest.fixture(scope='module')
def meta():
    return load_yaml(METAFILE)


def test_metafile_is_imported():
    assert check_imported(load_yaml(MODEL_INDEX)) == []


def test_collection(meta):
    assert check_collections(meta) == []


def test_models(meta):
    assert check_models(meta) == []


def test_readme_marks_converted_models(meta):
    readme = meta['Collections'][0]['README']
    text = read_text(readme)
    assert check_readme(meta, text) == []
    assert check_readme_links(text, readme) == []


def test_names_and_numbers(meta):
    """The authors' ImageNet numbers are all third-party entries; soft_mm's
    own measurement (digits) is not."""
    by_name = {m['Name']: m for m in meta['Models']}
    assert 'Converted From' not in by_name['soft-tiny_1xb64_digits']
    imagenet = [m for m in meta['Models']
                if m['Results'][0]['Dataset'] == 'ImageNet-1k']
    assert len(imagenet) == 11
    for model in imagenet:
        assert '3rdparty' in model['Name'].split('_')
        assert 'Converted From' in model
    top1 = {n: m['Results'][0]['Metrics']['Top 1 Accuracy']
            for n, m in by_name.items()}
    assert top1['soft-tiny_3rdparty_mindspore-port_in1k'] == 78.44
    assert top1['soft-tiny_3rdparty_8xb128-official_in1k'] == 79.3
    assert top1['soft-norm-huge_3rdparty_16xb64-official_in1k'] == 83.4


# ---- every check fails when it should ----------------------------------


def _broken(meta, index, **changes):
    broken = copy.deepcopy(meta)
    model = broken['Models'][index]
    for key, value in changes.items():
        key = key.replace('__', ' ')
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
    return broken


def _third_party_index(meta):
    return next(i for i, m in enumerate(meta['Models'])
                if 'Converted From' in m)


def test_import_check_fails():
    assert check_imported({'Import': []})
    assert check_imported({'Import': [METAFILE, 'configs/none/metafile.yml']})


@pytest.mark.parametrize('change,match', [
    (lambda c: c.update(Collections=c['Collections'] * 2), 'exactly one'),
    (lambda c: c['Collections'][0].pop('Name'), 'no Name'),
    (lambda c: c['Collections'][0].pop('Metadata'), 'no Metadata'),
    (lambda c: c['Collections'][0].pop('Paper'), 'Paper with'),
    (lambda c: c['Collections'][0]['Paper'].pop('Title'), 'no Title'),
    (lambda c: c['Collections'][0]['Paper'].pop('URL'), 'no URL'),
    (lambda c: c['Collections'][0].pop('README'), 'no README'),
    (lambda c: c['Collections'][0].update(README='configs/soft/NO.md'),
     'does not exist'),
])
def test_collection_checks_fail(meta, change, match):
    broken = copy.deepcopy(meta)
    change(broken)
    assert any(match in p for p in check_collections(broken))


@pytest.mark.parametrize('changes,match', [
    (dict(Name='soft-tiny_in1k'), '3-5 fields'),
    (dict(Name='a_b_c_d_e_f'), '3-5 fields'),
    (dict(Name='SOFT-tiny_1xb64_digits'), 'lower-case'),
    (dict(Metadata=None), 'no Metadata'),
    (dict(Metadata={'Parameters': 1}), 'FLOPs'),
    (dict(Metadata={'FLOPs': 1}), 'Parameters'),
    (dict(Results=None), 'no Results'),
    (dict(Results=[{'Dataset': {'a': 1}, 'Task': 'x',
                    'Metrics': {'Top 1 Accuracy': 1.0}}]), 'string'),
    (dict(Results=[{'Dataset': 'x', 'Metrics': {'a': 1.0}}]), 'Task'),
    (dict(Results=[{'Dataset': 'x', 'Task': 'x', 'Metrics': {}}]),
     'numeric Metrics'),
    (dict(Config=None), 'no Config'),
    (dict(Config='configs/soft/none.py'), 'does not exist'),
    (dict(Config='configs/soft/soft-tiny_8xb128_in1k.py'),
     'the config name'),
    (dict(In__Collection='SOFT-Norm'), 'In Collection'),
    (dict(Paper={'Title': 'x'}), 'Paper needs'),
    (dict(Weights='checkpoints/none.pth'), 'do not exist'),
    (dict(Weights='https://example.org/other.pth'), 'should start with'),
])
def test_model_checks_fail(meta, changes, match):
    problems = check_models(_broken(meta, 0, **changes))
    assert any(match in p for p in problems), problems


def test_third_party_checks_fail(meta):
    i = _third_party_index(meta)
    name = meta['Models'][i]['Name']
    # 3rdparty without Converted From, and Converted From without 3rdparty.
    assert any('no Converted From' in p
               for p in check_models(_broken(meta, i, Converted__From=None)))
    own = name.replace('_3rdparty', '')
    problems = check_models(_broken(meta, i, Name=own))
    assert any('needs "3rdparty"' in p for p in problems), problems
    for key in ('Weights', 'Code'):
        broken = copy.deepcopy(meta)
        broken['Models'][i]['Converted From'].pop(key)
        assert any(f'Converted From.{key}' in p
                   for p in check_models(broken))
    broken = copy.deepcopy(meta)
    broken['Models'].append(copy.deepcopy(broken['Models'][i]))
    assert any('used twice' in p for p in check_models(broken))


def test_readme_checks_fail(meta):
    readme = read_text(meta['Collections'][0]['README'])
    i = _third_party_index(meta)
    name = meta['Models'][i]['Name']
    unmarked = readme.replace(f'`{name}`\\*', f'`{name}`')
    assert any('not marked' in p for p in check_readme(meta, unmarked))
    own = meta['Models'][0]['Name']
    assert 'Converted From' not in meta['Models'][0]
    marked = readme.replace(f'`{own}`', f'`{own}`\\*')
    assert any('converted' in p and own in p
               for p in check_readme(meta, marked))
    missing = readme.replace(f'`{name}`\\*', '`other`')
    assert any('no README table row' in p
               for p in check_readme(meta, missing))
    no_note = re.sub(r'^\*Models with', 'Models with', readme, flags=re.M)
    assert any('footnote' in p for p in check_readme(meta, no_note))
    assert check_readme_links('[x](./none.py)', METAFILE)
