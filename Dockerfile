# Astro project image (`astro dev start`). Astro Runtime 3.3 carries Airflow 3.3; the ONBUILD steps of
# the runtime image install packages.txt and requirements.txt and copy dags/, plugins/ and include/.
FROM astrocrpublic.azurecr.io/runtime:3.3-2

# The library is imported as `include.carrier_optimization` from the project root (/usr/local/airflow).
ENV PYTHONPATH=/usr/local/airflow \
    CARRIER_OPT_OUTBOX=/usr/local/airflow/outbox
