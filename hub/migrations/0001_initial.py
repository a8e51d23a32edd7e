from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Document',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('issuer', fields.CharField(max_length=64)),
                ('type', fields.CharField(max_length=64)),
                ('doc_id', fields.CharField(max_length=128)),
                ('version', fields.IntField()),
                ('supersedes', fields.IntField(null=True)),
                ('status', fields.CharField(max_length=16)),
                ('subject', fields.CharField(null=True, db_index=True, max_length=128)),
                ('body', fields.TextField(null=True, unique=False)),
                ('salt', fields.BinaryField(null=True)),
                ('digest', fields.BinaryField()),
                ('issued_at', fields.CharField(max_length=40)),
                ('leaf_index', fields.BigIntField(unique=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('erased_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'documents', 'app': 'models', 'unique_together': (('issuer', 'type', 'doc_id', 'version'),), 'indexes': [Index(fields=['type', 'doc_id'])], 'pk_attr': 'id', 'table_description': 'One version of a document. Rows are never updated, except erasure of body and salt.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AccessEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('agency', fields.CharField(max_length=64)),
                ('document', fields.ForeignKeyField('models.Document', source_field='document_id', db_constraint=True, to_field='id', related_name='accesses', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(max_length=200)),
                ('at', fields.CharField(max_length=40)),
                ('leaf_index', fields.BigIntField(unique=True)),
            ],
            options={'table': 'access_events', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An agency read a document body, mirrored by an `access` leaf.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Grant',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('agency', fields.CharField(db_index=True, max_length=64)),
                ('type', fields.CharField(max_length=64)),
                ('issuers', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('view', fields.CharField(max_length=16)),
                ('purpose', fields.CharField(max_length=200)),
                ('valid_from', fields.CharField(max_length=40)),
                ('valid_until', fields.CharField(null=True, max_length=40)),
                ('revoked_at', fields.CharField(null=True, max_length=40)),
                ('leaf_index', fields.BigIntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'grants', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Institution',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('kind', fields.CharField(max_length=16)),
                ('signatures_required', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'institutions', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IssuerKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('institution', fields.ForeignKeyField('models.Institution', source_field='institution_id', db_constraint=True, to_field='id', related_name='keys', on_delete=OnDelete.CASCADE)),
                ('public_key', fields.BinaryField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'issuer_keys', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An Ed25519 key a hospital signs document bodies with.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerBundle',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('width', fields.IntField()),
                ('data', fields.BinaryField()),
            ],
            options={'table': 'ledger_bundles', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An entry bundle: up to 256 leaves as uint16-length-prefixed leaf data (tlog-tiles).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerCheckpoint',
            fields=[
                ('size', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('root', fields.BinaryField()),
                ('note', fields.TextField(unique=False)),
                ('signed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'ledger_checkpoints', 'app': 'models', 'pk_attr': 'size', 'table_description': 'Every checkpoint the log signed, by tree size. The log never signs two for one size.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerTile',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('width', fields.IntField()),
                ('hashes', fields.BinaryField()),
            ],
            options={'table': 'ledger_tiles', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A tile of height 8 with all its complete nodes (hub/ledger/tiles.py).'},
            bases=['Model'],
        ),
    ]
