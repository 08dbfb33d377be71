from django_tenants.utils import get_tenant_model, get_tenant_domain_model, get_public_schema_name
Tenant, Domain = get_tenant_model(), get_tenant_domain_model()
public = Tenant.objects.filter(schema_name=get_public_schema_name()).first()
if public is None:
    fields = {f.name for f in Tenant._meta.get_fields()}
    public = Tenant(schema_name=get_public_schema_name(), **({'name': 'public'} if 'name' in fields else {}))
    public.save()
    print('created the public tenant')
if not Domain.objects.filter(domain='APEX').exists():
    Domain.objects.create(domain='APEX', tenant=public, is_primary=True)
    print('created the public domain APEX')
