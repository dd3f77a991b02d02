FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=giz_site.settings.production \
    GIZ_DATA_DIR=/data
WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/base.txt -c requirements/lock.txt
COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
VOLUME /data
EXPOSE 8000
CMD ["gunicorn", "-c", "giz_site/gunicorn.conf.py", "giz_site.wsgi", "--bind", "0.0.0.0:8000"]
