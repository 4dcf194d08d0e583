"""The console's pages, one ``APIRouter`` per concern; the composition root includes them."""
