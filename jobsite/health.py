from rest_framework.views import APIView


class HealthApi(APIView):  # replaced by the ops work
    pass
