"""Database tables (tortoise-orm). Migrations in `hub/migrations` are generated from these.

The ledger tables are written with raw SQL in bulk (hub/ledger/storage.py): model
instances cost more than the insert on that path, so their column names are a contract.
"""

from tortoise import fields
from tortoise.models import Model


class LedgerTile(Model):
    """A tile of height 8 with all its complete nodes (hub/ledger/tiles.py)."""

    id = fields.BigIntField(primary_key=True)  # tiles.tile_key(level, index)
    width = fields.IntField()
    hashes = fields.BinaryField()

    class Meta:
        table = "ledger_tiles"


class LedgerBundle(Model):
    """An entry bundle: up to 256 leaves as uint16-length-prefixed leaf data (tlog-tiles)."""

    id = fields.BigIntField(primary_key=True)  # bundle index = leaf index // 256
    width = fields.IntField()
    data = fields.BinaryField()

    class Meta:
        table = "ledger_bundles"


class LedgerCheckpoint(Model):
    """Every checkpoint the log signed, by tree size. The log never signs two for one size."""

    size = fields.BigIntField(primary_key=True)
    root = fields.BinaryField()
    note = fields.TextField()
    signed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ledger_checkpoints"


class LedgerCosignature(Model):
    """A witness's cosignature on a checkpoint the log signed (C2SP tlog-cosignature v1)."""

    id = fields.BigIntField(primary_key=True)
    size = fields.BigIntField(db_index=True)  # ledger_checkpoints.size it cosigns
    witness = fields.CharField(max_length=255)  # the witness's key name
    key_id = fields.BinaryField()
    at = fields.BigIntField()  # the cosignature's timestamp, POSIX seconds
    line = fields.TextField()  # the note signature line, newline included

    class Meta:
        table = "ledger_cosignatures"
        unique_together = (("size", "witness", "key_id"),)


class Institution(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=16)  # any lower-case name: hospital, agency, school, ...
    signatures_required = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "institutions"


class IssuerKey(Model):
    """An Ed25519 key a hospital signs document bodies with."""

    id = fields.IntField(primary_key=True)
    institution: fields.ForeignKeyRelation[Institution] = fields.ForeignKeyField(
        "models.Institution", related_name="keys"
    )
    public_key = fields.BinaryField()
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "issuer_keys"


class Document(Model):
    """One version of a document. Rows are never updated, except erasure of body and salt."""

    id = fields.BigIntField(primary_key=True)
    issuer = fields.CharField(max_length=64)
    type = fields.CharField(max_length=64)
    doc_id = fields.CharField(max_length=128)
    version = fields.IntField()
    supersedes = fields.IntField(null=True)
    status = fields.CharField(max_length=16)
    subject = fields.CharField(max_length=128, null=True, db_index=True)  # patientRef
    body = fields.TextField(null=True)  # the JCS text the digest covers; NULL once erased
    salt = fields.BinaryField(null=True)
    digest = fields.BinaryField()
    issued_at = fields.CharField(max_length=40)
    leaf_index = fields.BigIntField(unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    erased_at = fields.DatetimeField(null=True)
    # The version of its type it was validated under.
    type_version = fields.IntField(default=1, db_default=1)

    class Meta:
        table = "documents"
        unique_together = (("issuer", "type", "doc_id", "version"),)
        indexes = (("type", "doc_id"),)


class Grant(Model):
    id = fields.CharField(max_length=40, primary_key=True)
    agency = fields.CharField(max_length=64, db_index=True)
    type = fields.CharField(max_length=64)
    issuers: fields.Field[list[str]] = fields.JSONField()  # list of institution ids, or ["*"]
    view = fields.CharField(max_length=16)
    purpose = fields.CharField(max_length=200)
    valid_from = fields.CharField(max_length=40)
    valid_until = fields.CharField(max_length=40, null=True)
    revoked_at = fields.CharField(max_length=40, null=True)
    leaf_index = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    claims = fields.BooleanField(default=False)  # may book reimbursement claims (hub/claims)

    class Meta:
        table = "grants"


class AccessEvent(Model):
    """An agency read a document body, mirrored by an `access` leaf."""

    id = fields.BigIntField(primary_key=True)
    agency = fields.CharField(max_length=64)
    document: fields.ForeignKeyRelation[Document] = fields.ForeignKeyField(
        "models.Document", related_name="accesses"
    )
    purpose = fields.CharField(max_length=200)
    at = fields.CharField(max_length=40)
    leaf_index = fields.BigIntField(unique=True)

    class Meta:
        table = "access_events"


class Claim(Model):
    """An agency's reimbursement claim on one document version (hub/claims), mirrored by a
    `claim` leaf, and by a second one once released. The document's identity is repeated
    because the claim's record, which the leaf commits to, names it."""

    id = fields.CharField(max_length=40, primary_key=True)
    document: fields.ForeignKeyRelation[Document] = fields.ForeignKeyField(
        "models.Document", related_name="claims"
    )
    issuer = fields.CharField(max_length=64)
    type = fields.CharField(max_length=64)
    doc_id = fields.CharField(max_length=128)
    version = fields.IntField()
    agency = fields.CharField(max_length=64, db_index=True)
    amount = fields.CharField(max_length=24)  # decimal string, two places
    reference = fields.CharField(max_length=200)
    status = fields.CharField(max_length=16)  # active | released (disputed is derived)
    at = fields.CharField(max_length=40)
    salt = fields.BinaryField()
    leaf_index = fields.BigIntField(unique=True)
    released_at = fields.CharField(max_length=40, null=True)
    release_reason = fields.CharField(max_length=200, null=True)
    release_leaf_index = fields.BigIntField(unique=True, null=True)

    class Meta:
        table = "claims"
        indexes = (("issuer", "type", "doc_id"),)


class DocumentType(Model):
    """One registered version of a document type, mirrored by a `type` leaf."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    version = fields.IntField()
    definition = fields.TextField()  # JCS of the definition; its SHA-256 is the leaf's digest
    digest = fields.BinaryField()
    leaf_index = fields.BigIntField(unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "document_types"
        unique_together = (("name", "version"),)


class BillCode(Model):
    """A medical-invoice bill code and the institution it belongs to.

    ``assigned``: registered by the operator (`--bill-code`); otherwise bound to the
    hospital at its first use. An institution with an assigned code uses only its own.
    """

    code = fields.CharField(max_length=16, primary_key=True)
    institution = fields.CharField(max_length=64, db_index=True)
    assigned = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bill_codes"
