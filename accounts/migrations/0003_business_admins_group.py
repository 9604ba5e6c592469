from django.db import migrations


def create_group(apps, schema_editor):
    from accounts.permissions import grant_business_admin_permissions

    # On a fresh database the permissions do not exist yet: the post_migrate receiver
    # grants them; on an existing one this grants what is already there.
    grant_business_admin_permissions(apps=apps, using=schema_editor.connection.alias)


def delete_group(apps, schema_editor):
    from accounts.permissions import BUSINESS_ADMINS

    apps.get_model("auth", "Group").objects.filter(name=BUSINESS_ADMINS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_invitations_lockouts_mfa"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
