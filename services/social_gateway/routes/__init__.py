"""The social edge's HTTP routes, one APIRouter per concern; ``app.py`` includes them."""
