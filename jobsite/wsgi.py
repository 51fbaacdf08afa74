import os

from django.core.wsgi import get_wsgi_application

from jobsite.heap import freeze_startup_heap
from jobsite.observability import setup_tracing_if_configured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
# Before the application loads its middleware: Django's instrumentation adds its own.
setup_tracing_if_configured(service_name="jobsite-web", django=True)
application = get_wsgi_application()
# Each web process, once the application is loaded (jobsite/heap.py).
freeze_startup_heap()
