from rest_framework.views import APIView


class TokenObtainApi(APIView):  # replaced by the auth work
    pass
