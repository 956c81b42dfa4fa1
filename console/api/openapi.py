"""The POS API's OpenAPI 3.1 description, served at /api/v1/openapi.json (a test keeps it in step with the routes)."""

from __future__ import annotations

from typing import Any

from console.forms import MAX_ID
from loyalty.earning import MAX_BILL_AMOUNT as MAX_BILL


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 100},
    "description": "The same key again returns the first result and changes nothing.",
}
CODE = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
ENTRY_ID = {
    "name": "entry_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
# Who the request is for, in any write that names a member: one of these.
MEMBER_BY = {
    "member_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "card": {"type": "string", "description": "scanned member card token"},
    "phone": {"type": "string"},
}
UNAUTHORIZED = _error("missing or invalid X-Api-Key (code `unauthorized`)")


def _base_spec(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tichdiem POS API",
            "version": "1.0.0",
            "description": "Earn points for bills, refund them, create counter claims and redeem vouchers. "
            'Every error is {"error": {"code", "message"}} with a stable code.',
        },
        "servers": [{"url": f"{server_url.rstrip('/')}/api/v1"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI document"}},
                }
            },
            "/members/lookup": {
                "get": {
                    "summary": "Find a member by card token (scanned QR) or phone",
                    "parameters": [
                        {"name": "card", "in": "query", "schema": {"type": "string"}},
                        {"name": "phone", "in": "query", "schema": {"type": "string"}},
                        {"name": "member_id", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": _ok("MemberEnvelope"),
                        "401": UNAUTHORIZED,
                        "404": _error("`member_not_found`"),
                        "422": _error("`validation_error`, `invalid_phone`"),
                    },
                }
            },
            "/earns": {
                "post": {
                    "summary": "Credit points for a bill",
                    "parameters": [IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EarnRequest"}}},
                    },
                    "responses": {
                        "201": _ok("EarnResult"),
                        "200": _ok("EarnResult", "replay of an earlier request"),
                        "400": _error("`bad_request`"),
                        "401": UNAUTHORIZED,
                        "403": _error("`member_blocked`"),
                        "404": _error("`member_not_found`"),
                        "409": _error("`idempotency_conflict`, `duplicate_bill`"),
                        "422": _error("`invalid_amount`, `validation_error`, `missing_idempotency_key`"),
                    },
                }
            },
            "/earns/{entry_id}/reverse": {
                "post": {
                    "summary": "Refund a bill: take back exactly the points it earned (once)",
                    "parameters": [ENTRY_ID],
                    "responses": {
                        "200": _ok("ReverseResult"),
                        "401": UNAUTHORIZED,
                        "404": _error("`entry_not_found`"),
                        "409": _error("`already_reversed`, `insufficient_points`"),
                    },
                }
            },
            "/stamps/{stamp_id}/reverse": {
                "post": {
                    "summary": "Refund a bill that gave stamps but no points: its stamps come off (once); a card it "
                    "filled reopens and its unused voucher is cancelled",
                    "parameters": [{"name": "stamp_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {
                        "200": _ok("StampReverseResult"),
                        "401": UNAUTHORIZED,
                        "403": _error("`forbidden` (the bill earned points: refund it by its earn)"),
                        "404": _error("`stamp_not_found`"),
                    },
                }
            },
            "/bills": {
                "post": {
                    "summary": "Record a bill of a customer who is not a member (no points; counted in the owner's "
                    "results: members' share of revenue)",
                    "parameters": [IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BillRequest"}}},
                    },
                    "responses": {
                        "201": _ok("BillResult"),
                        "200": _ok("BillResult", "replay of an earlier request"),
                        "400": _error("`bad_request`"),
                        "401": UNAUTHORIZED,
                        "409": _error("`idempotency_conflict`"),
                        "422": _error("`invalid_amount`, `validation_error`, `missing_idempotency_key`"),
                    },
                }
            },
            "/vip-plans": {
                "get": {
                    "summary": "The paid membership plans on sale",
                    "responses": {"200": _ok("VipPlans"), "401": UNAUTHORIZED},
                }
            },
            "/vip-memberships": {
                "post": {
                    "summary": "Sell a paid membership: a period (a renewal starts where the current one ends) "
                    "with the plan's tier held to its end",
                    "parameters": [IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VipSaleRequest"}}},
                    },
                    "responses": {
                        "201": _ok("VipSale"),
                        "200": _ok("VipSale", "replay of an earlier request"),
                        "400": _error("`bad_request`"),
                        "401": UNAUTHORIZED,
                        "403": _error("`member_blocked`"),
                        "404": _error("`member_not_found`"),
                        "409": _error("`idempotency_conflict`"),
                        "422": _error("`vip_unavailable`, `validation_error`, `missing_idempotency_key`"),
                    },
                }
            },
            "/point-payments": {
                "post": {
                    "summary": "Pay part of a bill with points, at the program's point value and within its limits",
                    "parameters": [IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/PointPaymentRequest"}}
                        },
                    },
                    "responses": {
                        "201": _ok("PointPaymentResult"),
                        "200": _ok("PointPaymentResult", "replay of an earlier request"),
                        "400": _error("`bad_request`"),
                        "401": UNAUTHORIZED,
                        "403": _error("`member_blocked`"),
                        "404": _error("`member_not_found`"),
                        "409": _error("`idempotency_conflict`"),
                        "422": _error(
                            "`payment_refused` (with `reason`: off, min_balance, over_limit, insufficient, invalid, "
                            "and `limit`), `validation_error`, `missing_idempotency_key`"
                        ),
                    },
                }
            },
            "/point-payments/{entry_id}/refund": {
                "post": {
                    "summary": "Refund a bill paid partly with points: the points go back (once)",
                    "parameters": [ENTRY_ID],
                    "responses": {
                        "200": _ok("ReverseResult"),
                        "401": UNAUTHORIZED,
                        "404": _error("`entry_not_found`"),
                        "409": _error("`already_reversed`"),
                    },
                }
            },
            "/claims": {
                "post": {
                    "summary": "Create a one-time claim code (and QR) the customer sends to the OA",
                    "parameters": [IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClaimRequest"}}},
                    },
                    "responses": {
                        "201": _ok("ClaimEnvelope"),
                        "400": _error("`bad_request`"),
                        "401": UNAUTHORIZED,
                        "422": _error("`invalid_amount`, `validation_error`, `missing_idempotency_key`"),
                    },
                }
            },
            "/claims/{code}/qr.{fmt}": {
                "get": {
                    "summary": "The claim's QR code as PNG or SVG",
                    "parameters": [
                        CODE,
                        {
                            "name": "fmt",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": ["png", "svg"]},
                        },
                    ],
                    "responses": {
                        "200": {"description": "image/png or image/svg+xml"},
                        "401": UNAUTHORIZED,
                        "404": _error("`claim_not_found`"),
                    },
                }
            },
            "/vouchers/{code}": {
                "get": {
                    "summary": "Check a voucher before using it",
                    "parameters": [CODE],
                    "responses": {
                        "200": _ok("VoucherEnvelope"),
                        "401": UNAUTHORIZED,
                        "404": _error("`voucher_not_found`"),
                    },
                }
            },
            "/vouchers/{code}/redeem": {
                "post": {
                    "summary": "Use a voucher (once)",
                    "parameters": [CODE, IDEMPOTENCY],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"member_id": {"type": "integer"}}}
                            }
                        },
                    },
                    "responses": {
                        "200": _ok("VoucherEnvelope"),
                        "401": UNAUTHORIZED,
                        "404": _error("`voucher_not_found`"),
                        "409": _error("`voucher_used`, `voucher_cancelled`"),
                        "422": _error("`voucher_expired`, `voucher_wrong_member`, `missing_idempotency_key`"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "reason": {"type": "string", "description": "payment_refused: why"},
                                "limit": {"type": "integer", "description": "payment_refused: the figure"},
                            },
                        }
                    },
                },
                "Member": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "phone": {"type": ["string", "null"]},
                        "tier": {"type": ["string", "null"]},
                        "points_balance": {"type": "integer"},
                        "status": {"type": "string"},
                    },
                },
                "MemberEnvelope": {"type": "object", "properties": {"member": {"$ref": "#/components/schemas/Member"}}},
                "EarnRequest": {
                    "type": "object",
                    "required": ["amount"],
                    "properties": {
                        "amount": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 2_000_000_000,
                            "description": "bill amount in đ",
                        },
                        "bill_ref": {
                            "type": "string",
                            "description": "the store's bill number; one credited before gets 409 duplicate_bill",
                        },
                        "new_bill": {
                            "type": "boolean",
                            "description": "true: a new bill that reuses an already credited bill number",
                        },
                        "items": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 1000},
                            "maxProperties": 50,
                            "description": 'items per product group on the bill, e.g. {"Cà phê": 2}: a stamp card '
                            "for a group stamps one per item (up to its limit per bill); cards without a group "
                            "stamp every qualifying bill once",
                        },
                        **MEMBER_BY,
                    },
                },
                "PointPaymentRequest": {
                    "type": "object",
                    "required": ["amount", "points"],
                    "properties": {
                        "amount": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 2_000_000_000,
                            "description": "bill amount in đ",
                        },
                        "points": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
                        "bill_ref": {"type": "string", "description": "the store's bill number"},
                        **MEMBER_BY,
                    },
                },
                "PointPaymentResult": {
                    "type": "object",
                    "properties": {
                        "entry_id": {"type": "integer"},
                        "points": {"type": "integer"},
                        "vnd": {"type": "integer", "description": "what the points paid, in đ"},
                        "to_pay": {"type": "integer", "description": "what is left for the customer to pay, in đ"},
                        "balance": {"type": "integer"},
                        "replayed": {"type": "boolean"},
                        "member": {"$ref": "#/components/schemas/Member"},
                    },
                },
                "BillRequest": {
                    "type": "object",
                    "required": ["amount"],
                    "properties": {
                        "amount": {"type": "integer", "minimum": 1, "maximum": 2_000_000_000},
                        "bill_ref": {"type": "string"},
                    },
                },
                "BillResult": {
                    "type": "object",
                    "properties": {
                        "bill_id": {"type": "integer"},
                        "amount": {"type": "integer"},
                        "replayed": {"type": "boolean"},
                    },
                },
                "VipPlans": {
                    "type": "object",
                    "properties": {
                        "plans": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "integer"},
                                    "name": {"type": "string"},
                                    "price": {"type": "integer", "description": "đ"},
                                    "duration_days": {"type": "integer"},
                                    "tier": {"type": "string"},
                                },
                            },
                        }
                    },
                },
                "VipSaleRequest": {
                    "type": "object",
                    "required": ["plan_id"],
                    "properties": {
                        "plan_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "bill_ref": {"type": "string"},
                        **MEMBER_BY,
                    },
                },
                "VipSale": {
                    "type": "object",
                    "properties": {
                        "membership_id": {"type": "integer"},
                        "plan": {"type": "string"},
                        "price": {"type": "integer"},
                        "tier": {"type": "string"},
                        "starts_at": {"type": "string", "format": "date-time"},
                        "ends_at": {"type": "string", "format": "date-time"},
                        "replayed": {"type": "boolean"},
                        "member": {"$ref": "#/components/schemas/Member"},
                    },
                },
                "StampProgress": {
                    "type": "object",
                    "properties": {
                        "stamp_id": {"type": ["integer", "null"], "description": "refund a points-less bill by it"},
                        "stamp_card_id": {"type": "integer"},
                        "name": {"type": "string"},
                        "added": {"type": "integer", "description": "stamps this bill added"},
                        "stamps": {"type": "integer", "description": "on the card in hand now"},
                        "stamps_needed": {"type": "integer"},
                        "skipped": {"type": ["string", "null"], "enum": ["min_bill", "cooldown", None]},
                        "voucher_code": {"type": ["string", "null"], "description": "the bill filled the card"},
                        "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "StampReverseResult": {
                    "type": "object",
                    "properties": {
                        "stamps": {"type": "array", "items": {"type": "object"}},
                        "vouchers_cancelled": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "EarnResult": {
                    "type": "object",
                    "properties": {
                        "entry_id": {"type": ["integer", "null"]},
                        "points": {"type": "integer"},
                        "stamps": {"type": "array", "items": {"$ref": "#/components/schemas/StampProgress"}},
                        "balance": {"type": "integer"},
                        "replayed": {"type": "boolean"},
                        "limited_by": {"type": ["string", "null"]},
                        "member": {"$ref": "#/components/schemas/Member"},
                    },
                },
                "ReverseResult": {
                    "type": "object",
                    "properties": {
                        "reversal_entry_id": {"type": "integer"},
                        "points": {"type": "integer"},
                        "balance": {"type": "integer"},
                    },
                },
                "ClaimRequest": {
                    "type": "object",
                    "required": ["amount"],
                    "properties": {
                        "amount": {"type": "integer", "minimum": 1, "maximum": MAX_BILL},
                        "bill_ref": {"type": "string"},
                    },
                },
                "ClaimEnvelope": {
                    "type": "object",
                    "properties": {
                        "claim": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "amount": {"type": "integer"},
                                "expires_at": {"type": "string"},
                                "url": {"type": "string"},
                                "qr_png": {"type": "string"},
                                "qr_svg": {"type": "string"},
                                "chat_text": {"type": "string"},
                            },
                        }
                    },
                },
                "VoucherEnvelope": {"type": "object", "properties": {"voucher": {"type": "object"}}},
            },
        },
    }


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def spec(server_url: str) -> dict[str, Any]:
    doc = _base_spec(server_url)
    throttled = _error("`too_many_attempts`: 10 unknown voucher codes in 10 minutes for this key")
    for path in ("/vouchers/{code}", "/vouchers/{code}/redeem"):
        for operation in doc["paths"][path].values():
            operation["responses"]["429"] = throttled
    return doc
