import hashlib
import json

import pytest

from webhooks.signature import verify_signature

RAW = b'{"app_id":"123","event_name":"follow","timestamp":"1700000000000","follower":{"id":"9"}}'
# sha256("123" + RAW + "1700000000000" + "s3cret"), computed once with coreutils' sha256sum:
# printf '%s%s%s%s' 123 "$RAW" 1700000000000 s3cret | sha256sum
KNOWN_MAC = "5993e58c5106e61ac18901ded6e9449ce103f553658ba05455a73f1a10189b88"


def verify(raw: bytes, header: str | None, secrets: list[str], app_id: str = "123", oa_id: str = "") -> bool:
    return verify_signature(raw, header, json.loads(raw), app_id=app_id, oa_id=oa_id, secrets=secrets)


def test_known_vector_with_and_without_mac_prefix() -> None:
    assert verify(RAW, f"mac={KNOWN_MAC}", ["s3cret"])
    assert verify(RAW, KNOWN_MAC.upper(), ["s3cret"])


@pytest.mark.parametrize("header", [None, "", "mac=", "mac=" + "0" * 64])
def test_missing_or_wrong_mac_is_refused(header: str | None) -> None:
    assert not verify(RAW, header, ["s3cret"])


def test_wrong_secret_is_refused() -> None:
    assert not verify(RAW, f"mac={KNOWN_MAC}", ["other"])


def test_tampered_body_is_refused() -> None:
    tampered = RAW.replace(b'"9"', b'"8"')
    assert not verify(tampered, f"mac={KNOWN_MAC}", ["s3cret"])


def test_reserialised_body_does_not_verify() -> None:
    # Zalo signs the exact bytes; pretty-printing the same JSON must not pass.
    pretty = json.dumps(json.loads(RAW), indent=1).encode()
    assert not verify(pretty, f"mac={KNOWN_MAC}", ["s3cret"])


def test_second_secret_and_oa_id_variant_are_accepted() -> None:
    assert verify(RAW, f"mac={KNOWN_MAC}", ["first-secret", "s3cret"])
    oa_first = hashlib.sha256(b"OA9" + RAW + b"1700000000000" + b"s3cret").hexdigest()
    assert verify(RAW, f"mac={oa_first}", ["s3cret"], oa_id="OA9")
    assert not verify(RAW, f"mac={oa_first}", ["s3cret"], oa_id="")


def test_body_without_timestamp_is_refused() -> None:
    raw = b'{"app_id":"123","event_name":"follow"}'
    mac = hashlib.sha256(b"123" + raw + b"None" + b"s3cret").hexdigest()
    assert not verify(raw, f"mac={mac}", ["s3cret"])
