@echo off
rem 4.2) data_src util add landmarks debug images: write data_src/aligned_landmarks_debug with the
rem landmarks drawn on each face.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    --add-landmarks-debug-images ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
