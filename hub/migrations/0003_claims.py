from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_document_types')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Claim',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('document', fields.ForeignKeyField('models.Document', source_field='document_id', db_constraint=True, to_field='id', related_name='claims', on_delete=OnDelete.CASCADE)),
                ('issuer', fields.CharField(max_length=64)),
                ('type', fields.CharField(max_length=64)),
                ('doc_id', fields.CharField(max_length=128)),
                ('version', fields.IntField()),
                ('agency', fields.CharField(db_index=True, max_length=64)),
                ('amount', fields.CharField(max_length=24)),
                ('reference', fields.CharField(max_length=200)),
                ('status', fields.CharField(max_length=16)),
                ('at', fields.CharField(max_length=40)),
                ('salt', fields.BinaryField()),
                ('leaf_index', fields.BigIntField(unique=True)),
                ('released_at', fields.CharField(null=True, max_length=40)),
                ('release_reason', fields.CharField(null=True, max_length=200)),
                ('release_leaf_index', fields.BigIntField(null=True, unique=True)),
            ],
            options={'table': 'claims', 'app': 'models', 'indexes': [Index(fields=['issuer', 'type', 'doc_id'])], 'pk_attr': 'id', 'table_description': "An agency's reimbursement claim on one document version (hub/claims), mirrored by a"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Grant',
            name='claims',
            field=fields.BooleanField(default=False),
        ),
    ]
