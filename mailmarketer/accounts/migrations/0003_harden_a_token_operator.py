from django.db import migrations, models


def mark_operator_tokens(apps, schema_editor):
    # Until now a token without a creator was one made from the command line (no user had
    # been deleted through the app): those keep working without an owner.
    ApiToken = apps.get_model("accounts", "ApiToken")
    ApiToken.objects.filter(created_by=None).update(issued_by_operator=True)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_audit_append_only")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="issued_by_operator",
            field=models.BooleanField(
                default=False, help_text="Made from the command line: no staff member owns it"
            ),
        ),
        migrations.RunPython(mark_operator_tokens, migrations.RunPython.noop),
    ]
