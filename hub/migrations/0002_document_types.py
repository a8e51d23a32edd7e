"""Document types, bill codes bound to institutions, and each document's type version."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BillCode',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=16)),
                ('institution', fields.CharField(db_index=True, max_length=64)),
                ('assigned', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'bill_codes', 'app': 'models', 'pk_attr': 'code', 'table_description': 'A medical-invoice bill code and the institution it belongs to.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DocumentType',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('version', fields.IntField()),
                ('definition', fields.TextField(unique=False)),
                ('digest', fields.BinaryField()),
                ('leaf_index', fields.BigIntField(unique=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'document_types', 'app': 'models', 'unique_together': (('name', 'version'),), 'pk_attr': 'id', 'table_description': 'One registered version of a document type, mirrored by a `type` leaf.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Document',
            name='type_version',
            field=fields.IntField(default=1, db_default=1),
        ),
        # Hospitals keep the bill codes their stored invoices already use (bound at first
        # use); a code two hospitals both used before goes to the lowest institution id.
        ops.RunSQL(
            "INSERT INTO bill_codes (code, institution, assigned, created_at)"
            " SELECT substr(doc_id, 1, 8), MIN(issuer), FALSE, CURRENT_TIMESTAMP"
            " FROM documents WHERE type = 'medical_invoice' GROUP BY substr(doc_id, 1, 8)"
        ),
    ]
