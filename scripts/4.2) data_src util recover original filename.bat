@echo off
rem 4.2) data_src util recover original filename: rename the faces of data_src/aligned back to their
rem extraction names (after sort).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    --recover-original-aligned-filename ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
