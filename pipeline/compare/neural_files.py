"""Low-level readers of the neural-data file formats: each returns plain numpy arrays.

``neural.py`` checks what these return (shapes, values, counts); this module only knows the
formats: ``.npy``, ``.npz``, MATLAB ``.mat`` (v4 to v7, through ``scipy.io.loadmat``), and
HDF5 (``.h5``/``.hdf5``, through h5py), including the layout rsatoolbox's
``RDMs.save(path, file_type="hdf5")`` writes:

- a dataset ``dissimilarities`` of shape (S, K): each RDM's upper triangle, row-major;
- a group ``rdm_descriptors`` holding one dataset per descriptor (``index`` always, ``name``
  when the user gave names; strings stored as bytes, a list of mixed items as a group whose
  members are named ``0``, ``1``, ...);
- ``dissimilarity_measure``: an attribute of the file, or an empty dataset when it was None.

A "path with a key" (``data.npz:train``, ``v1.mat:RDMs_V1``, ``r.h5:/group/data``) picks one
array of a container file; ``split_key`` separates the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from ..errors import NeuralDataError

CONTAINERS = (".npz", ".mat", ".h5", ".hdf5")
_KEYED = re.compile(r"^(.*\.(?:npz|mat|h5|hdf5)):([^:]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class RdmFile:
    """What an RDM file holds before any check: the array and, when the file says, names."""

    array: np.ndarray
    names: list[str] | None = None
    measure: str | None = None
    matlab: bool = False  # a MATLAB array: (N, N, S) stacks are MATLAB's usual layout
    stacked: bool = False  # the first axis counts RDMs: a 2-D array is (S, K) even if square


def split_key(text: str | Path) -> tuple[Path, str | None]:
    """``"a.npz:train"`` -> (Path("a.npz"), "train"); a plain path -> (path, None)."""
    text = str(text)
    match = _KEYED.match(text)
    if match is None or Path(text).exists():
        return Path(text), None
    return Path(match.group(1)), match.group(2)


def existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise NeuralDataError(
            f"{what}: expected an existing file, received {str(path)!r}, which "
            f"{'is a folder' if path.is_dir() else 'does not exist'}; check the path"
        )
    return path


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise NeuralDataError(
            f"{path}: expected a .npy file of numbers, received one numpy cannot read without "
            f"pickle ({exc}); save it with numpy.save(path, array) from a numeric array"
        ) from exc


def load_npz(path: Path, key: str | None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, AttributeError, TypeError) as exc:
        raise NeuralDataError(
            f"{path}: expected a .npz archive of numeric arrays, received one numpy cannot "
            f"read ({exc}); save it with numpy.savez(path, name=array)"
        ) from exc
    return _pick(path, arrays, key, "array")


def load_h5_array(path: Path, key: str | None) -> np.ndarray:
    with _open_h5(path) as file:
        if key is not None:
            node = file.get(key)
            if not isinstance(node, h5py.Dataset):
                raise NeuralDataError(
                    f"{path}: expected a dataset named {key!r}, received a file whose datasets "
                    f"are {_listing(_datasets(file))}; name one of them after the colon"
                )
            return _read_dataset(path, node)
        datasets = _datasets(file)
        return _read_dataset(path, file[_pick_name(path, datasets, None, "dataset")])


def load_mat(path: Path, key: str | None) -> np.ndarray:
    """One numeric variable of a .mat file (the only one, or the one named ``key``)."""
    variables = mat_variables(path)
    name = _pick_name(path, list(variables), key, "variable")
    return _mat_numeric(path, name, variables[name])


def mat_variables(path: Path) -> dict[str, Any]:
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError as exc:  # scipy's answer to a v7.3 file
        raise NeuralDataError(
            f"{path}: expected a MATLAB .mat file of version 5 to 7, received a v7.3 file (an "
            "HDF5 file that scipy cannot read); in MATLAB save it with save(file, 'RDMs', "
            "'-v7'), or rename it to .h5 and name the dataset (file.h5:name)"
        ) from exc
    except (ValueError, TypeError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise NeuralDataError(
            f"{path}: expected a MATLAB .mat file, received one scipy.io.loadmat cannot read "
            f"({exc}); save it again from MATLAB with save(file, name, '-v7')"
        ) from exc
    return {name: value for name, value in contents.items() if not name.startswith("__")}


def load_rdm_file(path: Path, key: str | None) -> RdmFile:
    """The array of RDMs a file holds, in the format its suffix names."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return RdmFile(load_npy(path))
    if suffix == ".mat":
        return _mat_rdms(path, key)
    if suffix in (".h5", ".hdf5"):
        return _h5_rdms(path, key)
    raise NeuralDataError(
        f"{path}: expected reference RDMs in a .npy, .mat, .h5 or .hdf5 file, received a "
        f"{suffix or 'suffix-less'} file; convert it to one of those (numpy.save for arrays)"
    )


def _mat_rdms(path: Path, key: str | None) -> RdmFile:
    variables = mat_variables(path)
    if key is None:
        structs = [n for n, v in variables.items() if _is_struct(v) and "RDM" in v.dtype.names]
        if "RDMs" in variables:
            key = "RDMs"
        elif len(structs) == 1:
            key = structs[0]
    name = _pick_name(path, list(variables), key, "variable")
    value = variables[name]
    if not _is_struct(value):
        return RdmFile(_mat_numeric(path, name, value), matlab=True)
    if "RDM" not in value.dtype.names:
        raise NeuralDataError(
            f"{path}: expected the struct array {name!r} to have a field 'RDM' (the RSA "
            f"toolbox layout), received fields {_listing(value.dtype.names)}; name the "
            "variable holding the RDMs after a colon (file.mat:variable)"
        )
    elements = value.flatten(order="F")  # MATLAB's linear (column-major) order
    matrices = [
        _mat_numeric(path, f"{name}({i + 1}).RDM", e["RDM"]) for i, e in enumerate(elements)
    ]
    shapes = {_mat_rdm_shape(m) for m in matrices}
    if len(shapes) > 1:
        raise NeuralDataError(
            f"{path}: expected every RDMs(i).RDM of {name!r} to have the same number of "
            f"conditions, received shapes {_listing(sorted(str(m.shape) for m in matrices))}; "
            "keep one set of conditions per file"
        )
    stack = np.stack([np.ravel(m) if min(m.shape) == 1 else m for m in matrices])
    names = None
    if "name" in value.dtype.names:
        names = [_mat_string(e["name"]) or f"{path.stem}-{i}" for i, e in enumerate(elements)]
    return RdmFile(stack, names=names, stacked=True)


def _mat_rdm_shape(matrix: np.ndarray) -> tuple[int, ...]:
    return (matrix.size,) if matrix.ndim == 2 and min(matrix.shape) == 1 else matrix.shape


def _h5_rdms(path: Path, key: str | None) -> RdmFile:
    if key is not None:
        return RdmFile(load_h5_array(path, key))
    with _open_h5(path) as file:
        if "dissimilarities" not in file:
            datasets = _datasets(file)
            if len(datasets) != 1:
                raise NeuralDataError(
                    f"{path}: expected an RDMs file written by rsatoolbox's RDMs.save(path, "
                    "file_type='hdf5') (a dataset 'dissimilarities') or a single dataset, "
                    f"received datasets {_listing(datasets)}; name one after a colon "
                    "(file.h5:name)"
                )
            return RdmFile(_read_dataset(path, file[datasets[0]]))
        array = _read_dataset(path, file["dissimilarities"])
        names = None
        descriptors = file.get("rdm_descriptors")
        if isinstance(descriptors, h5py.Group) and "name" in descriptors:
            names = _h5_strings(descriptors["name"])
        measure = file.attrs.get("dissimilarity_measure")
        measure = None if measure is None else str(measure)
        return RdmFile(array, names=names, measure=measure, stacked=True)


def _h5_strings(node: h5py.Dataset | h5py.Group) -> list[str]:
    if isinstance(node, h5py.Group):  # rsatoolbox writes a list numpy cannot hold as 0, 1, ...
        items = sorted(node, key=lambda k: int(k) if k.isdigit() else -1)
        return [_text(np.asarray(node[k][()]).ravel()[0]) for k in items]
    return [_text(item) for item in np.asarray(node[()]).ravel()]


def _text(item: object) -> str:
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise NeuralDataError(
            f"{path}: expected an HDF5 file, received one h5py cannot open ({exc}); check that "
            "the file is complete and really HDF5"
        ) from exc


def _datasets(file: h5py.File) -> list[str]:
    names: list[str] = []
    file.visititems(lambda name, node: names.append(name) if _is_array(node) else None)
    return names


def _is_array(node: object) -> bool:
    return isinstance(node, h5py.Dataset) and node.shape is not None and node.dtype.kind in "iufb"


def _read_dataset(path: Path, node: h5py.Dataset) -> np.ndarray:
    if node.shape is None or node.dtype.kind not in "iufb":
        raise NeuralDataError(
            f"{path}: expected the dataset {node.name!r} to hold numbers, received "
            f"{'an empty dataset' if node.shape is None else f'dtype {node.dtype}'}; "
            "name a numeric dataset after a colon (file.h5:name)"
        )
    return np.asarray(node[()])


def _is_struct(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.names is not None


def _mat_numeric(path: Path, name: str, value: object) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype.kind in "iufb":
        return value
    kind = "a struct" if _is_struct(value) else f"a {type(value).__name__}"
    if isinstance(value, np.ndarray) and not _is_struct(value):
        kind = "a cell array" if value.dtype == object else f"an array of dtype {value.dtype}"
    raise NeuralDataError(
        f"{path}: expected {name!r} to be a numeric array, received {kind}; store the numbers "
        "as a plain double array (or an RSA-toolbox struct array RDMs with fields RDM and name)"
    )


def _mat_string(value: object) -> str:
    array = np.asarray(value)
    if array.dtype.kind == "U" and array.size >= 1:
        return "".join(str(s) for s in array.ravel()).strip()
    return ""


def _pick(path: Path, arrays: dict[str, np.ndarray], key: str | None, what: str) -> np.ndarray:
    return arrays[_pick_name(path, list(arrays), key, what)]


def _pick_name(path: Path, names: list[str], key: str | None, what: str) -> str:
    if key is not None and key in names:
        return key
    if key is None and len(names) == 1:
        return names[0]
    if key is not None:
        received = f"no {what} named {key!r} among {_listing(names)}"
    elif names:
        received = f"{len(names)} {what}s ({_listing(names)}) and no name"
    else:
        received = f"no {what} at all"
    raise NeuralDataError(
        f"{path}: expected one {what} to read, received {received}; name the {what} after a "
        f"colon, e.g. {path.name}:{names[0] if names else 'name'}"
    )


def _listing(names: Any) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in names[:12])
    return f"[{shown}{', ...' if len(names) > 12 else ''}]"
