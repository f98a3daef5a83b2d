"""Bundle signatures: OpenSSF model-signing with an elliptic-curve key, written beside the bundle as
`<bundle>.sig`. A signature covers every byte of the file; loading with a verify key refuses a bundle
that is unsigned, signed by another key, or changed after signing."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import write_atomic
from .archive import parse, read_file
from .layout import MIB

SIGNATURE_SUFFIX = ".sig"
SIGN_EXTRA = "pip install 'upgrade-predictor[sign]'"
MAX_SIGNATURE_BYTES = MIB
MAX_KEY_BYTES = 64 * 1024
_NO_EXTRA = f"signing and verifying bundles needs the 'sign' extra: {SIGN_EXTRA}"
_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # the curves model-signing accepts


def signature_path(path: str | Path) -> Path:
    """Where a bundle's signature lives: beside it, named `<bundle>.sig`."""
    path = Path(path)
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def sign_bundle(path: str | Path, private_key: Path) -> Path:
    """Sign the bundle with a PEM elliptic-curve private key; write `<bundle>.sig` beside it (atomically)
    and return its path. The bundle must pass the integrity checks first: a damaged or altered file is
    never signed."""
    path = Path(path)
    check_signing_key(private_key)
    data = read_file(path)
    parse(path, data)
    signing, _ = _model_signing()
    with tempfile.TemporaryDirectory(prefix="upgrade-predictor-sign-") as d:
        # The bytes checked above are the bytes signed, even if the file changes meanwhile.
        copy, sig = Path(d) / path.name, Path(d) / "signature"
        copy.write_bytes(data)
        try:
            signing.Config().use_elliptic_key_signer(private_key=Path(private_key)).sign(copy, sig)
        except Exception as e:  # the key was checked above; anything left is the library's own
            raise InputError(
                f"--sign-key {private_key}: could not sign {path} ({type(e).__name__}: {e})"
            ) from None
        signature = sig.read_bytes()
    out = signature_path(path)
    write_atomic(out, lambda f: f.write(signature))
    return out


def check_signing_key(private_key: Path) -> None:
    """Refuse a signing key that cannot sign (missing, not a PEM key, a public key, an unsupported
    curve, encrypted) before any work is done."""
    key = Path(private_key)
    data = _read_key(key, "--sign-key")
    serialization, ec = _crypto()
    _model_signing()  # a missing extra is found now, not after training
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying the key needs a password
        raise InputError(
            f"--sign-key {key}: the private key is encrypted, and password-protected keys are not "
            "supported; sign with an unencrypted key readable only by the signer"
        ) from None
    except (ValueError, ImportError):
        what = "a public key" if b"PUBLIC KEY" in data else "not a PEM private key"
        raise InputError(
            f"--sign-key {key}: {what}; signing needs the elliptic-curve private key "
            "(make one with: openssl ecparam -genkey -name prime256v1 -noout -out signing.pem)"
        ) from None
    _check_curve(key, "--sign-key", loaded, ec.EllipticCurvePrivateKey)


def _check_curve(key: Path, option: str, loaded: Any, kind: type) -> None:
    curve = getattr(loaded, "curve", None)
    if not isinstance(loaded, kind) or curve is None or curve.name not in _CURVES:
        kind_name = type(loaded).__name__.strip("_").replace("PrivateKey", "").replace("PublicKey", "")
        name = curve.name if curve is not None else kind_name
        raise InputError(
            f"{option} {key}: holds a key of type {name}; bundles are signed with elliptic-curve "
            "keys on P-256, P-384 or P-521 (openssl ecparam -genkey -name prime256v1 -noout -out "
            "signing.pem)"
        )


def _read_key(key: Path, option: str) -> bytes:
    if not key.is_file():
        what = "not a regular file" if key.exists() else "no such key file"
        raise InputError(f"{option} {key}: {what}; give the PEM key file")
    try:
        with open(key, "rb") as f:
            data = f.read(MAX_KEY_BYTES + 1)
    except OSError as e:
        raise InputError(f"{option} {key}: cannot be read ({e.strerror})") from None
    if len(data) > MAX_KEY_BYTES:
        raise InputError(f"{option} {key}: over {MAX_KEY_BYTES // 1024} KiB, not a PEM key file")
    return data


def _crypto() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise InputError(_NO_EXTRA) from None
    return serialization, ec


def _model_signing() -> tuple[Any, Any]:
    """OpenSSF model-signing, imported only when a bundle is signed or verified (it is an extra)."""
    try:
        from model_signing import signing, verifying
    except ImportError:
        raise InputError(_NO_EXTRA) from None
    return signing, verifying


def _public_key_hint(verify_key: Path) -> str:
    """sha256 of the public key's PEM, as model-signing records it in the signature to name the key."""
    data = _read_key(verify_key, "--verify-key")
    serialization, ec = _crypto()
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, ImportError):
        what = "a private key" if b"PRIVATE KEY" in data else "not a PEM public key"
        raise InputError(
            f"--verify-key {verify_key}: {what}; verifying needs the signer's public key "
            "(openssl ec -in signing.pem -pubout -out signing.pub)"
        ) from None
    _check_curve(verify_key, "--verify-key", loaded, ec.EllipticCurvePublicKey)
    pem = loaded.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def verify(path: Path, data: bytes, verify_key: Path) -> None:
    """Refuse the bundle's bytes unless `<bundle>.sig` is a signature of exactly them by verify_key."""
    hint = _public_key_hint(Path(verify_key))
    sig_path = signature_path(path)
    if not sig_path.is_file():
        raise InputError(
            f"{path}: not signed ({sig_path.name} is missing beside it) and --verify-key was given; "
            "use a bundle trained with --sign-key, or get its signature from whoever published it"
        )
    try:
        with open(sig_path, "rb") as f:
            sig = f.read(MAX_SIGNATURE_BYTES + 1)
        if len(sig) > MAX_SIGNATURE_BYTES:
            raise ValueError(f"over {MAX_SIGNATURE_BYTES // MIB} MiB")
        # Read here first so that model-signing only ever sees a signature that names its key.
        doc = json.loads(sig)
        recorded = doc["verificationMaterial"]["publicKey"]["hint"]
        if not isinstance(doc["dsseEnvelope"], dict) or not isinstance(recorded, str) or not recorded:
            raise ValueError("no signing key named in it")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise InputError(
            f"{sig_path}: not a bundle signature ({type(e).__name__}: {e}); sign the bundle again with "
            "--sign-key"
        ) from None
    if recorded != hint:
        raise InputError(
            f"{path}: signed by another key than --verify-key {verify_key}; use the public key of "
            "whoever signed it, or refuse this bundle"
        )
    from cryptography.exceptions import InvalidSignature

    _, verifying = _model_signing()
    with tempfile.TemporaryDirectory(prefix="upgrade-predictor-verify-") as d:
        # Verify a private copy of the very bytes that will be loaded: the file cannot change between.
        copy, sig_copy = Path(d) / path.name, Path(d) / sig_path.name
        copy.write_bytes(data)
        sig_copy.write_bytes(sig)
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=Path(verify_key)).verify(copy, sig_copy)
        except InvalidSignature:
            raise InputError(
                f"{sig_path}: the signature is not valid for --verify-key {verify_key} (forged or "
                "damaged); refuse this bundle or get a fresh signature from its publisher"
            ) from None
        except Exception as e:  # model-signing reports a changed file as ValueError("Signature mismatch")
            if isinstance(e, ValueError) and str(e).startswith("Signature mismatch"):
                raise InputError(
                    f"{path}: changed after it was signed (its bytes no longer match {sig_path.name}); "
                    "restore the original bundle or retrain"
                ) from None
            raise InputError(
                f"{sig_path}: the signature could not be checked ({type(e).__name__}: {e}); sign the "
                "bundle again with --sign-key"
            ) from None
