import json, os
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
try:
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    if executor.migration_plan(graph.leaf_nodes()):
        print('migrations still pending: verify will ask Django', file=sys.stderr)
    else:
        wanted = set(graph.nodes)
        for migration in graph.nodes.values():
            wanted.update(migration.replaces or ())
        here = os.path.realpath('.') + os.sep
        dirs = {os.path.dirname(os.path.realpath(sys.modules[type(m).__module__].__file__)) for m in graph.nodes.values()}
        record = {'applied': sorted(list(k) for k in executor.loader.applied_migrations if k in wanted),
                  'dirs': sorted(d for d in dirs if not (d + os.sep).startswith(here))}
        with open('RECORD.new', 'w') as f:
            json.dump(record, f)
        os.replace('RECORD.new', 'RECORD')
except Exception as e:
    # Only verify's shortcut is lost: it asks Django instead.
    print('could not record the migrations for verify (it will ask Django): %s' % e, file=sys.stderr)
