"""Read the pickles inside SMPL and GraphCMR asset files without ever running code from them.

The original SMPL ``.pkl`` files are Python-2 pickles holding ``chumpy`` objects, scipy sparse
matrices and numpy arrays; GraphCMR's ``mesh_downsampling.npz`` holds object arrays of pickled
sparse matrices. ``pickle.load`` would import and call whatever a file names, so a file handed to
us could run any code. Here a restricted unpickler admits a short, fixed list of globals (see
``admitted.ADMITTED`` and ``admitted.RestrictedUnpickler.find_class``):

- numpy's array, dtype and scalar reconstruction (``_reconstruct``, ``dtype``, ``scalar``,
  ``_frombuffer``), wrapped so that they accept only data;
- chumpy classes and scipy sparse classes, mapped to inert placeholder classes of our own (no chumpy
  or scipy code runs while reading);
- what a protocol 0-2 pickle needs to spell bytes and sets: ``_codecs.encode`` (latin1 only),
  ``bytes()``, ``set`` of plain values (the original SMPL files hold chumpy's sets of names), and
  ``copyreg._reconstructor`` for placeholder classes (with ``object`` only as its base argument).

Everything else is refused with ``AssetInvalid`` before it is touched. After loading, placeholders
are converted: a chumpy object becomes ``np.asarray(x)``, a sparse placeholder becomes a validated
``scipy.sparse.csc_matrix``.

``load_joblib`` reads files written by ``joblib.dump`` (e.g. the VIBE/TCMR ``*_db.pt`` datasets)
with the same admitted list minus chumpy and sparse classes, plus joblib's array record
``joblib.numpy_pickle.NumpyArrayWrapper`` as an inert placeholder: joblib writes each array as that
record followed by the array's raw bytes outside the pickle, which are read here as plain data
(never through ``pickle``, except the elements of object arrays, which go through the same
restricted unpickler).
"""

from core.safe_pickle.joblib_files import load_joblib
from core.safe_pickle.pickles import ASSET_LIMITS, load_npz_with_objects, load_pickle

__all__ = ["ASSET_LIMITS", "load_joblib", "load_npz_with_objects", "load_pickle"]
