# Copyright (c) soft_mm contributors. All rights reserved.
"""Install soft_mm and build its SOFT attention extension (``soft_mm._ext``).

The extension is compiled against the torch already installed, so install
with ``pip install --no-build-isolation`` (``tools/setup.sh`` does). The CPU
kernel is always built; CUDA kernels when a CUDA toolkit and a CUDA build of
torch are present or ``FORCE_CUDA=1`` (``TORCH_CUDA_ARCH_LIST`` is honoured);
the Ascend path when ``FORCE_NPU=1``. ``SOFT_MM_WITH_OPS=0`` skips the build
(the op then falls back to the pure-PyTorch reference).
"""
import glob
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def readme() -> str:
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope = {}
    with open(osp.join(ROOT, 'soft_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Requirement lines of ``requirements/<fname>``, comments dropped."""
    with open(osp.join(ROOT, 'requirements', fname)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def get_extensions():
    """The ``soft_mm._ext`` extension for the devices this build can target.

    Returns:
        tuple | list: ``([extension], BuildExtension)``, or ``[]`` when
        nothing is to be built (``SOFT_MM_WITH_OPS=0``, no torch, no sources).
    """
    if os.getenv('SOFT_MM_WITH_OPS', '1') == '0':
        return []
    try:
        import torch
        from torch.utils.cpp_extension import (CUDA_HOME, BuildExtension,
                                               CppExtension, CUDAExtension)
    except ImportError:
        print('soft_mm: torch is not installed in the build environment; '
              'building without the C++ op (install with '
              '--no-build-isolation to build it)', file=sys.stderr)
        return []

    csrc = osp.join('soft_mm', 'ops', 'csrc')
    sources = glob.glob(osp.join(csrc, 'pytorch', '*.cpp'))
    if not sources:
        return []
    sources += glob.glob(osp.join(csrc, 'pytorch', 'cpu', '*.cpp'))
    define_macros = []
    # torch >= 2.10 headers need C++20. -fopenmp: at::parallel_for is a
    # header template whose `#pragma omp parallel` is ignored without it, so
    # every CPU kernel would run on one thread (torch's own libgomp, already
    # loaded, provides the runtime; see _openmp_flags).
    extra_compile_args = {'cxx': ['-std=c++20', '-O3', *_openmp_flags()]}
    extension = CppExtension

    with_cuda = (torch.version.cuda is not None and CUDA_HOME is not None
                 and (torch.cuda.is_available()
                      or os.getenv('TORCH_CUDA_ARCH_LIST')))
    if os.getenv('FORCE_CUDA', '0') == '1' or with_cuda:
        extension = CUDAExtension
        define_macros.append(('WITH_CUDA', None))
        sources += glob.glob(osp.join(csrc, 'pytorch', 'cuda', '*.cu'))
        sources += glob.glob(osp.join(csrc, 'pytorch', 'cuda', '*.cpp'))
        extra_compile_args['nvcc'] = [
            '-std=c++20', '-O3', '--use_fast_math', '-lineinfo'
        ]
    if os.getenv('FORCE_NPU', '0') == '1':
        define_macros.append(('WITH_NPU', None))
        sources += glob.glob(osp.join(csrc, 'pytorch', 'npu', '*.cpp'))

    ext = extension(
        name='soft_mm._ext',
        sources=sorted(sources),
        include_dirs=[osp.abspath(osp.join(csrc, 'common'))],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args)
    return [ext], BuildExtension


def _openmp_flags():
    """``['-fopenmp']`` where torch's CPU parallel backend is OpenMP."""
    import torch
    if sys.platform == 'darwin' or 'OpenMP' not in \
            torch.__config__.parallel_info():
        return []
    return ['-fopenmp']


def add_mim_extension() -> None:
    """Put tools/, configs/ and model-index.yml into ``soft_mm/.mim``.

    ``mim train|test|search soft_mm`` looks for the scripts and the model
    index in ``<installed soft_mm>/.mim``. Wheels and sdists carry copies
    (made fresh on every build from a source checkout; an sdist, which has
    no top-level tools/ or configs/, keeps the copies it shipped with). The
    in-place build of the README's setup (``build_ext --inplace``) links
    them instead, so that mim on an editable install never sees stale
    copies (``tools/setup.sh`` makes ``<site-packages>/soft_mm`` point at
    the checkout, where mim looks). ``pip install -e`` itself is skipped.
    """
    if 'develop' in sys.argv or any('editable' in a for a in sys.argv):
        return
    link = '--inplace' in sys.argv or '-i' in sys.argv
    mim_path = osp.join(ROOT, 'soft_mm', '.mim')
    # Byte code, and the CI helpers that only make sense in a checkout.
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', 'ci')
    for name in ('tools', 'configs', 'model-index.yml'):
        src, dst = osp.join(ROOT, name), osp.join(mim_path, name)
        if not osp.exists(src):
            continue
        os.makedirs(mim_path, exist_ok=True)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if link:
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=ignore)
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    built = get_extensions()
    ext_modules, cmdclass = [], {}
    if built:
        ext_modules, build_ext = built
        cmdclass = {'build_ext': build_ext.with_options(use_ninja=True)}
    setup(
        name='soft_mm',
        version=get_version(),
        description='SOFT (Softmax-free Transformer) for OpenMMLab 2.x',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, transformer, softmax-free, openmmlab',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'demo')),
        include_package_data=True,
        package_data={'soft_mm': ['.mim/**/*', 'ops/csrc/**/*']},
        python_requires='>=3.9',
        license='Apache License 2.0',
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            'mim': ['openmim>=0.3.9'],
        },
        ext_modules=ext_modules,
        cmdclass=cmdclass,
        zip_safe=False)
