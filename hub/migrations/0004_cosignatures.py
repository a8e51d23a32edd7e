from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_claims')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LedgerCosignature',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('size', fields.BigIntField(db_index=True)),
                ('witness', fields.CharField(max_length=255)),
                ('key_id', fields.BinaryField()),
                ('at', fields.BigIntField()),
                ('line', fields.TextField(unique=False)),
            ],
            options={'table': 'ledger_cosignatures', 'app': 'models', 'unique_together': (('size', 'witness', 'key_id'),), 'pk_attr': 'id', 'table_description': "A witness's cosignature on a checkpoint the log signed (C2SP tlog-cosignature v1)."},
            bases=['Model'],
        ),
    ]
