"""DICOMweb URL map (PS3.18), mounted under /dicomweb/ on the web port and at the root of
the DICOMweb port [WEB-3]: the search and store routes (QIDO-RS, STOW-RS) and the retrieve
routes (WADO-RS, WADO-URI)."""

from dicomweb.retrieve_urls import urlpatterns as retrieve_urlpatterns
from dicomweb.search_urls import urlpatterns as search_urlpatterns

urlpatterns = [*search_urlpatterns, *retrieve_urlpatterns]
